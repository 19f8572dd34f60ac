// The chat panel: room and private messages, each shown in the reader's language (the server
// translates them, PROTOCOL.md `chat`), the original one click away.
import { languageName } from "./languages.js";
import { setText } from "./i18n.js";

/** The text to show a reader of `languages`: {text, lang, translated, reason}. Pure. */
export function chatText(message, languages) {
  const translations = message.translations || {};
  for (const lang of languages) {
    if (lang === message.lang) break; // they read the original's language first
    if (translations[lang]) return { text: translations[lang], lang, translated: true };
  }
  const wanted = languages.find((l) => l !== message.lang);
  const reason = wanted && message.untranslated ? message.untranslated[wanted] : undefined;
  return { text: message.text, lang: message.lang, translated: false, reason };
}

export class ChatView {
  /**
   * @param {{log: HTMLElement, languages: () => string[], selfId: () => string|null,
   *          nameOf: (id: string) => string, onUnread: () => void}} options
   */
  constructor({ log, languages, selfId, nameOf, onUnread }) {
    this.log = log;
    this.languages = languages;
    this.selfId = selfId;
    this.nameOf = nameOf;
    this.onUnread = onUnread;
    this.seen = new Set();
    this.timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  add(message, { history = false } = {}) {
    if (this.seen.has(message.message_id)) return; // chat_history after a rejoin repeats some
    this.seen.add(message.message_id);
    this.log.append(this._item(message));
    this.log.lastElementChild.scrollIntoView({ block: "nearest" });
    if (!history && message.from !== this.selfId()) this.onUnread();
  }

  _item(m) {
    const li = document.createElement("li");
    li.className = `chat-message${m.private ? " private" : ""}`;
    li.dataset.messageId = m.message_id;
    const head = document.createElement("div");
    head.className = "chat-head";
    const who = document.createElement("span");
    who.className = "chat-name";
    const mine = m.from === this.selfId();
    const toName = m.to ? this.nameOf(m.to) : "";
    if (m.private) setText(who, mine ? "chat.privateTo" : "chat.privateFrom", mine ? { name: toName } : { name: m.from_name });
    else if (mine) setText(who, "chat.you");
    else who.textContent = m.from_name;
    const when = document.createElement("time");
    const at = new Date((m.sent_at || Date.now() / 1000) * 1000);
    when.dateTime = at.toISOString();
    when.textContent = this.timeFormat.format(at);
    head.append(who, when);
    const shown = mine ? { text: m.text, lang: m.lang, translated: false } : chatText(m, this.languages());
    const text = document.createElement("p");
    text.className = "chat-text";
    text.lang = shown.lang;
    text.dir = "auto";
    text.textContent = shown.text;
    li.append(head, text);
    if (shown.translated) {
      const original = document.createElement("p");
      original.className = "chat-original";
      original.lang = m.lang;
      original.dir = "auto";
      original.textContent = m.text;
      original.hidden = true;
      original.id = `chat-original-${m.message_id}`;
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "link-button chat-toggle";
      toggle.setAttribute("aria-expanded", "false");
      toggle.setAttribute("aria-controls", original.id);
      setText(toggle, "chat.showOriginal", { lang: languageName(m.lang) });
      toggle.addEventListener("click", () => {
        const show = original.hidden;
        original.hidden = !show;
        toggle.setAttribute("aria-expanded", String(show));
        if (show) setText(toggle, "chat.hideOriginal");
        else setText(toggle, "chat.showOriginal", { lang: languageName(m.lang) });
      });
      const note = document.createElement("span");
      note.className = "chat-note";
      setText(note, "chat.translatedFrom", { lang: languageName(m.lang) });
      li.append(note, toggle, original);
    } else if (shown.reason) {
      const note = document.createElement("span");
      note.className = "chat-note";
      setText(note, "chat.notTranslated");
      note.title = shown.reason; // the server's reason, for whoever runs it
      li.append(note);
    }
    return li;
  }
}

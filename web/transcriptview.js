// The transcript panel: finals with speaker names and times in the reader's language(s), and
// downloads in the formats of web/transcript.js.
import { chooseText } from "./captions.js";
import { FORMATS, Transcript } from "./transcript.js";

export class TranscriptView {
  /** @param {{list: HTMLElement, downloads: HTMLElement, room: () => string, languages: string[]}} options */
  constructor({ list, downloads, room, languages, bilingual = false }) {
    this.list = list;
    this.room = room;
    this.languages = [...languages];
    this.bilingual = bilingual;
    this.transcript = new Transcript({ originMs: Date.now() });
    this.timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    downloads.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-format]");
      if (button) this.download(button.dataset.format);
    });
  }

  /** The language the panel and the downloads use: the first one read, else the originals. */
  get lang() {
    return this.languages[0] || null;
  }

  setLanguages(languages) {
    this.languages = [...languages];
    this.render();
  }

  setBilingual(on) {
    this.bilingual = on;
    this.render();
  }

  add(caption, name, receivedMs) {
    const entry = this.transcript.add(caption, name, receivedMs);
    if (!entry) return;
    // appended in time order: usually at the end; re-render when it landed earlier
    if (this.transcript.entries[this.transcript.entries.length - 1] === entry) this.list.append(this._item(entry));
    else this.render();
  }

  render() {
    this.list.replaceChildren(...this.transcript.entries.map((e) => this._item(e)));
  }

  _item(entry) {
    const li = document.createElement("li");
    li.dataset.captionId = entry.captionId;
    const head = document.createElement("div");
    head.className = "transcript-head";
    const who = document.createElement("span");
    who.className = "transcript-name";
    who.textContent = entry.name;
    const when = document.createElement("time");
    when.dateTime = new Date(entry.startMs).toISOString();
    when.textContent = this.timeFormat.format(entry.startMs);
    head.append(who, when);
    const text = document.createElement("p");
    text.className = "transcript-text";
    // the same choice as the caption bar and chat (web/captions.js chooseText)
    const shown = chooseText({ lang: entry.lang, text: entry.text, translations: entry.translations }, this.languages);
    const lang = shown.lang;
    text.lang = lang;
    text.dir = "auto";
    text.textContent = shown.text;
    li.append(head, text);
    if (this.bilingual && lang !== entry.lang) {
      const original = document.createElement("p");
      original.className = "transcript-original";
      original.lang = entry.lang;
      original.dir = "auto";
      original.textContent = entry.text;
      li.append(original);
    }
    return li;
  }

  /** Save the transcript in `format` ("vtt" | "srt" | "txt" | "json"). */
  download(format) {
    const spec = FORMATS[format];
    if (!spec) return;
    const body = spec.render(this.transcript.entries, {
      lang: this.lang, originMs: this.transcript.originMs, room: this.room(),
    });
    const stamp = new Date(this.transcript.originMs).toISOString().slice(0, 16).replace(/[:T]/g, "-");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([body], { type: `${spec.mime};charset=utf-8` }));
    a.download = `parley-${this.room()}-${stamp}${this.lang ? `.${this.lang}` : ""}.${spec.ext}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
}

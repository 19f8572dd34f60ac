// The caption bar: renders CaptionBoard's view (web/captions.js) at the bottom of the stage.
// Updates touch only the text nodes that changed (no flicker); provisional text is styled
// apart and hidden from screen readers, so the polite live region announces settled words.
import { CaptionBoard } from "./captions.js";
import { languageName } from "./languages.js";
import { t } from "./i18n.js";

const TICK_MS = 500; // re-render to clear captions of speakers who went quiet

export class CaptionsView {
  /**
   * @param {{container: HTMLElement, bar: HTMLElement, nameOf: (id: string) => string,
   *          languages: string[], bilingual?: boolean}} options
   */
  constructor({ container, bar, nameOf, languages, bilingual = false }) {
    this.container = container;
    this.bar = bar;
    this.nameOf = nameOf;
    this.board = new CaptionBoard({ languages, bilingual });
    this.blocks = new Map(); // participant id -> {el, name, rows: Map key -> {el, lines: []}}
    this.enabled = true; // the CC toggle
    this.consented = false; // the transcription notice was shown and acknowledged
    this.pending = []; // captions that arrived before the notice was acknowledged
    this.timer = setInterval(() => this.render(), TICK_MS);
  }

  close() {
    clearInterval(this.timer);
  }

  setLanguages(languages) {
    this.board.setLanguages(languages);
    this.render();
  }

  setBilingual(on) {
    this.board.setBilingual(on);
    this.render();
  }

  setFontSize(size) {
    this.bar.dataset.size = size;
  }

  setEnabled(on) {
    this.enabled = on;
    this.render();
  }

  /** The notice was acknowledged: captions may show from now on. */
  consent() {
    this.consented = true;
    const now = Date.now();
    for (const caption of this.pending.splice(0)) this.board.apply(caption, now);
    this.render();
  }

  add(caption, receivedMs) {
    if (!this.consented) {
      this.pending.push(caption);
      if (this.pending.length > 50) this.pending.shift();
      return;
    }
    this.board.apply(caption, receivedMs);
    this.render();
  }

  removeSpeaker(id) {
    this.board.removeSpeaker(id);
    this.render();
  }

  render() {
    const view = this.enabled && this.consented ? this.board.view(Date.now()) : [];
    // no empty bar while nobody speaks
    this.bar.hidden = !this.enabled || !this.consented || view.length === 0;
    const seen = new Set();
    for (const block of view) {
      seen.add(block.participantId);
      this._renderBlock(block);
    }
    for (const [id, b] of this.blocks) {
      if (!seen.has(id)) {
        b.el.remove();
        this.blocks.delete(id);
      }
    }
    // oldest first, most recent speaker at the bottom (next to where the eye is)
    const order = view.map((b) => this.blocks.get(b.participantId).el);
    order.forEach((el, i) => {
      if (this.container.children[i] !== el) this.container.insertBefore(el, this.container.children[i] || null);
    });
  }

  _renderBlock(block) {
    let b = this.blocks.get(block.participantId);
    if (!b) {
      const el = document.createElement("div");
      el.className = "caption-block";
      el.dataset.participantId = block.participantId;
      const name = document.createElement("span");
      name.className = "caption-speaker";
      el.append(name);
      b = { el, name, rows: new Map() };
      this.blocks.set(block.participantId, b);
    }
    setText(b.name, this.nameOf(block.participantId));
    const keys = new Set();
    let at = 1; // after the name
    for (const row of block.rows) {
      const key = `${row.role}:${row.lang}`;
      keys.add(key);
      let r = b.rows.get(key);
      if (!r) {
        const el = document.createElement("div");
        el.className = `caption-row ${row.role}`;
        el.lang = row.lang;
        el.dir = "auto"; // English captions in an Arabic page read left to right, and back
        el.dataset.lang = row.lang;
        r = { el, lines: [], note: null };
        b.rows.set(key, r);
      }
      if (b.el.children[at] !== r.el) b.el.insertBefore(r.el, b.el.children[at] || null);
      at += 1;
      this._renderLines(r, row);
    }
    for (const [key, r] of b.rows) {
      if (!keys.has(key)) {
        r.el.remove();
        b.rows.delete(key);
      }
    }
  }

  _renderLines(r, row) {
    while (r.lines.length < row.lines.length) {
      const line = document.createElement("span");
      line.className = "caption-line";
      const stable = document.createElement("span");
      stable.className = "stable";
      const provisional = document.createElement("span");
      provisional.className = "provisional";
      provisional.setAttribute("aria-hidden", "true");
      line.append(stable, provisional);
      r.el.append(line);
      r.lines.push({ line, stable, provisional });
    }
    while (r.lines.length > row.lines.length) r.lines.pop().line.remove();
    row.lines.forEach((text, i) => {
      setText(r.lines[i].stable, text.stable);
      setText(r.lines[i].provisional, text.provisional);
    });
    // the server's reason is for operators; readers get plain words
    const reason = row.reason ? t("captions.untranslated", { lang: languageName(row.lang) }) : "";
    if (reason) {
      r.el.title = reason;
      r.el.dataset.note = t("captions.originalTag");
    } else r.el.removeAttribute("title");
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

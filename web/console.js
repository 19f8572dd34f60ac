// Interpreter console (console.html): every speaker's live source captions and each target
// language side by side, one row per caption; per final its latency, Whisper's confidence
// (doubtful words highlighted) and the engine of each translation; filters by speaker and
// language; a final's text is corrected in place (PROTOCOL.md "Interpreting").
// Buildless ES module; the protocol lives in protocol.js (no DOM there).

import { ParleySession, tabClientId } from "./protocol.js";
import { formatGlossary, parseGlossary } from "./glossary.js";
import { channelOf } from "./channels.js";
import { takeLinkToken } from "./linktoken.js";
import { bindLanguagePicker, onLanguageChange, setText, t, translatePage } from "./i18n.js";
import { languageName } from "./languages.js";
import { joinErrorKey } from "./messages.js";

/** Words below this probability are highlighted as doubtful. */
export const DOUBTFUL_WORD_P = 0.5;
/** Average log-probability below which a line's confidence is shown as low. */
export const LOW_AVG_LOGPROB = -0.7;
/** Average log-probability from which it is shown as high. */
export const HIGH_AVG_LOGPROB = -0.3;

/** Whisper's average log-probability in words: "high", "medium" or "low". */
export function confidenceLevel(avgLogprob) {
  if (avgLogprob >= HIGH_AVG_LOGPROB) return "high";
  return avgLogprob >= LOW_AVG_LOGPROB ? "medium" : "low";
}
const MAX_ROWS = 500;

const $ = (id) => document.getElementById(id);
// at once, before anything else: the join link's token leaves the address bar and history
const tokenFor = takeLinkToken();

/** "es, fr ,de" -> ["es", "fr", "de"] (valid codes only, no duplicates). */
export function parseLanguages(text) {
  const langs = text.split(",").map((s) => s.trim().toLowerCase()).filter((s) => /^[a-z]{2,3}$/.test(s));
  return [...new Set(langs)];
}

/** Text nodes and <mark>s for the source of a final: doubtful words marked. */
function sourceNodes(caption) {
  const words = Array.isArray(caption.words) ? caption.words : null;
  const joined = words ? words.map((w) => w[0]).join(" ").replace(/\s+/g, " ").trim() : "";
  if (!words || caption.corrected || joined !== caption.text.replace(/\s+/g, " ").trim()) {
    return [document.createTextNode(caption.text)];
  }
  const nodes = [];
  words.forEach(([word, p], i) => {
    if (i > 0) nodes.push(document.createTextNode(" "));
    if (p < DOUBTFUL_WORD_P) {
      const mark = document.createElement("mark");
      mark.className = "doubtful";
      mark.title = t("console.wordProbability", { p: Math.round(p * 100) });
      mark.textContent = word;
      nodes.push(mark);
    } else {
      nodes.push(document.createTextNode(word));
    }
  });
  return nodes;
}

class ConsoleView {
  constructor(session, languages) {
    this.session = session;
    this.languages = languages; // target languages, in column order
    this.rows = new Map(); // caption_id -> <tr>
    this.captions = new Map(); // caption_id -> latest caption message
    this.speakers = new Map(); // participant_id -> name
    this.shownLangs = new Set(["source", ...languages]);
    this.speakerFilter = "";
    this.buildHead();
    this.buildLangFilter();
    $("speaker-filter").addEventListener("change", (ev) => {
      this.speakerFilter = ev.target.value;
      for (const row of this.rows.values()) this.applyFilters(row);
    });
    session.addEventListener("caption", (ev) => this.onCaption(ev.detail.caption));
    session.addEventListener("participants", (ev) => this.onParticipants(ev.detail.participants));
    session.addEventListener("error", (ev) => setStatus("status.error", { message: `${ev.detail.code}: ${ev.detail.message}` }));
    session.addEventListener("glossary", (ev) => this.onGlossary(ev.detail));
    session.addEventListener("export", (ev) => download(ev.detail.filename, ev.detail.content, ev.detail.format));
    session.addEventListener("channels", () => {
      for (const row of this.rows.values()) this.labelSpeaker(row, this.captions.get(row.dataset.captionId));
    });
    $("glossary-save").addEventListener("click", () => this.saveGlossary());
    session.addEventListener("joined", () => this.renderBroadcast());
    session.addEventListener("broadcast", () => this.renderBroadcast());
    session.addEventListener("recordings", (ev) => this.renderRecordings(ev.detail));
    $("broadcast-button").addEventListener("click", () => session.setBroadcast(!session.broadcast.onAir));
    $("recordings-button").addEventListener("click", () => session.requestRecordings());
    const exports = [["json", null, "JSON"]];
    for (const lang of this.languages) exports.push(["vtt", lang, `WebVTT ${lang.toUpperCase()}`], ["srt", lang, `SRT ${lang.toUpperCase()}`]);
    $("export-buttons").replaceChildren(...exports.map(([format, lang, text]) => {
      const button = Object.assign(document.createElement("button"), { type: "button", className: "control small" });
      if (lang) button.textContent = text;
      else setText(button, "console.exportJson");
      button.dataset.format = format;
      if (lang) button.dataset.lang = lang;
      button.addEventListener("click", () => session.requestExport(format, lang));
      return button;
    }));
  }

  /** "On air to the public" for everyone; hosts start and stop the broadcast and list its
   * recordings (PROTOCOL.md "Broadcast"). */
  renderBroadcast() {
    const { onAir, watchUrl } = this.session.broadcast;
    const badge = $("broadcast-badge");
    badge.hidden = !onAir;
    if (watchUrl) badge.href = watchUrl;
    $("broadcast-tools").hidden = this.session.myRole !== "host";
    const button = $("broadcast-button");
    setText(button, onAir ? "broadcast.stop" : "broadcast.start");
    button.setAttribute("aria-pressed", String(onAir));
  }

  renderRecordings({ kept, recordings }) {
    const items = recordings.map((r) => {
      const li = document.createElement("li");
      const when = r.started_at ? new Date(r.started_at * 1000).toLocaleString() : r.recording_id;
      const minutes = r.duration_s ? Math.round(r.duration_s / 6) / 10 : 0;
      const label = document.createElement("span"); // its own element: a language change rewrites it
      setText(label, r.recording ? "console.recordingNow" : "console.recordingItem", { when, minutes });
      li.append(label);
      for (const file of r.files) {
        const a = Object.assign(document.createElement("a"), { href: file.url, download: "", textContent: file.name });
        li.append(" ", a);
      }
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      setText(li, kept ? "console.noRecordings" : "console.recordingsOff");
      items.push(li);
    }
    $("recordings-list").replaceChildren(...items);
  }

  onGlossary({ entries, by }) {
    const box = $("glossary-text");
    if (document.activeElement !== box) box.value = formatGlossary(entries);
    const who = by ? (this.speakers.get(by) || (by === this.session.participantId ? t("console.you") : by)) : null;
    if (who) setText($("glossary-by"), "console.glossaryCountBy", { count: entries.length, name: who });
    else setText($("glossary-by"), "console.glossaryCount", { count: entries.length });
  }

  saveGlossary() {
    const { entries, errors } = parseGlossary($("glossary-text").value);
    $("glossary-errors").replaceChildren(...errors.map((e) => Object.assign(document.createElement("li"), { textContent: t("console.glossaryLine", { line: e.line, message: e.message }) })));
    if (errors.length) return;
    this.session.setGlossary(entries);
    setStatus("console.glossarySent", { count: entries.length });
  }

  /** The speaker cell: the name, and the channel when the line is an interpreter's on air. */
  labelSpeaker(row, caption) {
    if (!row || !caption) return;
    const name = this.speakers.get(caption.participant_id) || caption.participant_id;
    const channel = caption.channel || null;
    row.querySelector(".speaker").textContent = channel ? t("console.channelLine", { name, lang: channel.toUpperCase() }) : name;
    row.classList.toggle("channel", Boolean(channel));
    row.dataset.onAir = channelOf(this.session.channels, caption.participant_id) || "";
  }

  buildHead() {
    const head = $("lines-head");
    const cells = [["speaker", "console.speaker"], ["source", "console.source"], ...this.languages.map((l) => [l, null]), ["meta", "console.meta"]];
    for (const [key, label] of cells) {
      const th = document.createElement("th");
      th.scope = "col";
      th.dataset.col = key;
      if (label) setText(th, label);
      else {
        th.textContent = key.toUpperCase();
        th.title = languageName(key);
      }
      if (key === "meta") th.className = "meta";
      head.append(th);
    }
  }

  buildLangFilter() {
    const box = $("lang-filter");
    for (const lang of ["source", ...this.languages]) {
      const id = `show-${lang}`;
      const input = Object.assign(document.createElement("input"), { type: "checkbox", id, checked: true });
      input.addEventListener("change", () => {
        if (input.checked) this.shownLangs.add(lang); else this.shownLangs.delete(lang);
        for (const el of document.querySelectorAll(`[data-col="${lang}"]`)) el.hidden = !input.checked;
      });
      const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: lang.toUpperCase() });
      if (lang === "source") setText(label, "console.source");
      box.append(input, label);
    }
  }

  onParticipants(participants) {
    const select = $("speaker-filter");
    for (const p of participants) {
      if (this.speakers.has(p.participant_id)) continue;
      this.speakers.set(p.participant_id, p.name);
      select.append(Object.assign(document.createElement("option"), { value: p.participant_id, textContent: p.name }));
    }
    for (const row of this.rows.values()) this.labelSpeaker(row, this.captions.get(row.dataset.captionId));
  }

  applyFilters(row) {
    row.hidden = Boolean(this.speakerFilter) && row.dataset.speaker !== this.speakerFilter;
  }

  onCaption(caption) {
    const old = this.captions.get(caption.caption_id);
    if (old && old.final && !caption.final) return; // a late interim never replaces a final
    if (old && caption.corrected) {
      // a correction carries the texts; latency and confidence stay the recognizer's
      caption = { ...caption, latency_ms: old.latency_ms, avg_logprob: old.avg_logprob, words: old.words };
    }
    this.captions.set(caption.caption_id, caption);
    let row = this.rows.get(caption.caption_id);
    if (!row) {
      row = this.newRow(caption);
      this.rows.set(caption.caption_id, row);
      $("lines-body").append(row);
      while (this.rows.size > MAX_ROWS) {
        const [id, first] = this.rows.entries().next().value;
        first.remove();
        this.rows.delete(id);
        this.captions.delete(id);
      }
    }
    this.fill(row, caption);
  }

  newRow(caption) {
    const row = document.createElement("tr");
    row.dataset.captionId = caption.caption_id;
    row.dataset.speaker = caption.participant_id;
    const speaker = Object.assign(document.createElement("td"), { className: "speaker" });
    speaker.dataset.col = "speaker";
    row.append(speaker);
    for (const col of ["source", ...this.languages]) {
      const td = document.createElement("td");
      td.className = "text";
      td.dataset.col = col;
      td.hidden = !this.shownLangs.has(col);
      row.append(td);
    }
    const meta = Object.assign(document.createElement("td"), { className: "meta" });
    meta.dataset.col = "meta";
    row.append(meta);
    this.applyFilters(row);
    return row;
  }

  fill(row, caption) {
    row.classList.toggle("interim", !caption.final);
    row.classList.toggle("final", Boolean(caption.final));
    this.labelSpeaker(row, caption);
    const corrected = new Set(caption.corrected_langs || []);
    for (const col of ["source", ...this.languages]) {
      const td = row.querySelector(`td.text[data-col="${col}"]`);
      if (td.isContentEditable) continue; // being edited: the edit wins until saved or cancelled
      const lang = col === "source" ? caption.lang : col;
      const text = col === "source" ? caption.text : (caption.translations || {})[col];
      td.replaceChildren();
      td.lang = lang;
      td.dataset.lang = lang;
      if (col === "source") {
        td.append(...(caption.final ? sourceNodes(caption) : [document.createTextNode(caption.text)]));
      } else if (text) {
        td.append(document.createTextNode(text));
      } else if (caption.untranslated && caption.untranslated[col]) {
        td.append(Object.assign(document.createElement("em"), { textContent: `(${caption.untranslated[col]})` }));
      }
      if (caption.final && col !== "source" && caption.engines && caption.engines[col]) {
        td.append(Object.assign(document.createElement("span"), { className: "engine", textContent: caption.engines[col] }));
      }
      if (caption.final && corrected.has(lang)) {
        const mark = Object.assign(document.createElement("span"), { className: "corrected-mark" });
        setText(mark, "console.corrected");
        td.append(mark);
      }
      if (caption.final && (col === "source" || text || lang === caption.lang)) {
        this.makeEditable(td, caption.caption_id, lang);
      }
    }
    const meta = row.querySelector("td.meta");
    const parts = [`${caption.lang}`];
    if (caption.final && typeof caption.latency_ms === "number") {
      parts.push(t("console.seconds", { s: (caption.latency_ms / 1000).toLocaleString(undefined, { maximumFractionDigits: 2 }) }));
    }
    if (caption.final && typeof caption.avg_logprob === "number") {
      parts.push(t(`console.confidence.${confidenceLevel(caption.avg_logprob)}`));
      meta.title = `avg logprob ${caption.avg_logprob.toFixed(2)}`; // for whoever tunes the recognizer
    }
    if (!caption.final) parts.push(t("console.interim"));
    meta.textContent = parts.join(" · ");
    meta.classList.toggle("low-confidence", typeof caption.avg_logprob === "number" && caption.avg_logprob < LOW_AVG_LOGPROB);
  }

  makeEditable(td, captionId, lang) {
    if (td.dataset.editable) return;
    td.dataset.editable = "1";
    td.tabIndex = 0;
    td.setAttribute("role", "button");
    td.setAttribute("aria-label", t("console.correct", { lang: languageName(lang) }));
    const start = () => {
      if (td.isContentEditable) return;
      const caption = this.captions.get(captionId);
      const current = lang === caption.lang ? caption.text : (caption.translations || {})[lang] || "";
      td.replaceChildren(document.createTextNode(current));
      td.contentEditable = "true";
      td.setAttribute("role", "textbox");
      td.focus();
    };
    const finish = (save) => {
      if (!td.isContentEditable) return;
      const text = td.textContent.trim();
      td.contentEditable = "false";
      td.setAttribute("role", "button");
      if (save && text) {
        this.session.correctCaption(captionId, lang, text);
        setStatus("console.correctionSent", { lang: languageName(lang) });
      }
      this.fill(this.rows.get(captionId), this.captions.get(captionId));
      td.focus();
    };
    td.addEventListener("click", start);
    td.addEventListener("keydown", (ev) => {
      if (!td.isContentEditable && (ev.key === "Enter" || ev.key === "F2")) { ev.preventDefault(); start(); return; }
      if (td.isContentEditable && ev.key === "Enter") { ev.preventDefault(); finish(true); }
      if (td.isContentEditable && ev.key === "Escape") { ev.preventDefault(); finish(false); }
    });
    td.addEventListener("blur", () => finish(false));
  }
}

/** Save `content` as `filename` (the browser's download). */
function download(filename, content, format) {
  const type = { json: "application/json", vtt: "text/vtt", srt: "application/x-subrip" }[format] || "text/plain";
  const url = URL.createObjectURL(new Blob([content], { type: `${type};charset=utf-8` }));
  const a = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  setStatus("console.downloaded", { filename });
}

function setStatus(key, params) {
  setText($("status"), key, params);
}

async function open(name, room, languages) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const token = tokenFor(room); // the join link's, kept per room (web/linktoken.js)
  const session = new ParleySession({ url, room, name, token, languages, role: "interpreter", reconnect: true, clientId: tabClientId() });
  window.parley = session; // exposed for tests and debugging
  window.parleyConsole = new ConsoleView(session, languages);
  await session.connect();
  $("join-form").hidden = true;
  $("console-view").hidden = false;
  $("room-badge").hidden = false;
  $("room-badge").textContent = room;
  setStatus("console.openAs", { name });
}

function main() {
  const params = new URLSearchParams(location.search);
  $("room-input").value = params.get("room") || "";
  $("name-input").value = params.get("name") || "";
  if (params.get("langs")) $("langs-input").value = params.get("langs");
  bindLanguagePicker($("ui-lang"));
  bindLanguagePicker($("console-ui-lang"));
  onLanguageChange(() => {
    translatePage(document);
    const view = window.parleyConsole;
    if (view) for (const row of view.rows.values()) view.fill(row, view.captions.get(row.dataset.captionId));
  });
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const languages = parseLanguages($("langs-input").value);
    try {
      await open($("name-input").value.trim(), $("room-input").value.trim(), languages);
    } catch (err) {
      const { key, params: values } = joinErrorKey(err, window.parley?.closeCode ?? null);
      setStatus(key, values);
    }
  });
  $("name-input").focus();
}

main();

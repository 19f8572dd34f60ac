// The meeting transcript: final captions with speaker names and times, and its export formats
// (WebVTT, SRT, plain text, JSON). Pure logic, no DOM (unit-tested with `node --test`).
//
// Times. A caption's start_s/end_s are on the speaker's own stream clock (PROTOCOL.md), which
// started when the server got their first audio sample. Each speaker's clock is mapped to the
// reader's wall clock with offset = min(received_ms - end_s * 1000) over their finals (a final
// never arrives before its audio has ended, so the smallest lag is the best estimate). A clock
// that runs backwards (the speaker's stream restarted) starts a new estimate.

/**
 * @typedef {{captionId: string, participantId: string, name: string, lang: string, text: string,
 *            translations: Object<string, string>, startMs: number, endMs: number}} TranscriptEntry
 */

export class Transcript {
  /** @param {{originMs?: number}} [options] originMs: time 0 of exported cues (e.g. when we joined) */
  constructor({ originMs = Date.now() } = {}) {
    this.originMs = originMs;
    /** @type {TranscriptEntry[]} */
    this.entries = [];
    this._clocks = new Map(); // participant id -> {offsetMs, lastEndS}
    this._ids = new Set();
  }

  /** Add a final `caption` message received at `receivedMs`; interims are ignored. */
  add(caption, name, receivedMs) {
    if (!caption.final || this._ids.has(caption.caption_id)) return null;
    const endS = Number(caption.end_s) || 0;
    const startS = Math.min(Number(caption.start_s) || 0, endS);
    let clock = this._clocks.get(caption.participant_id);
    const lag = receivedMs - endS * 1000;
    if (!clock || endS < clock.lastEndS - 1) {
      clock = { offsetMs: lag, lastEndS: endS };
      this._clocks.set(caption.participant_id, clock);
    }
    clock.offsetMs = Math.min(clock.offsetMs, lag);
    clock.lastEndS = Math.max(clock.lastEndS, endS);
    const entry = {
      captionId: caption.caption_id,
      participantId: caption.participant_id,
      name,
      lang: caption.lang,
      text: String(caption.text || "").trim(),
      translations: { ...(caption.translations || {}) },
      startMs: Math.round(startS * 1000 + clock.offsetMs),
      endMs: Math.round(endS * 1000 + clock.offsetMs),
    };
    if (!entry.text) return null;
    this._ids.add(entry.captionId);
    // keep entries in time order (finals of different speakers can arrive out of order)
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1].startMs > entry.startMs) i -= 1;
    this.entries.splice(i, 0, entry);
    return entry;
  }

  clear() {
    this.entries = [];
    this._clocks.clear();
    this._ids.clear();
  }
}

/** The entry's text in `lang`: the original when spoken in it, else its translation, else the original. */
export function textIn(entry, lang) {
  if (!lang || lang === entry.lang) return entry.text;
  return entry.translations[lang] || entry.text;
}

function pad(n, width = 2) {
  return String(Math.floor(n)).padStart(width, "0");
}

/** "HH:MM:SS.mmm" (sep ".") or "HH:MM:SS,mmm" (sep ",") for a time in milliseconds (>= 0). */
export function timestamp(ms, sep = ".") {
  const t = Math.max(0, Math.round(ms));
  const h = Math.floor(t / 3_600_000);
  const m = Math.floor(t / 60_000) % 60;
  const s = Math.floor(t / 1000) % 60;
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(t % 1000, 3)}`;
}

/** Cues with times relative to `originMs`; every cue lasts at least MIN_CUE_MS. */
const MIN_CUE_MS = 500;
function cues(entries, originMs) {
  return entries.map((e) => {
    const start = Math.max(0, e.startMs - originMs);
    return { entry: e, start, end: Math.max(e.endMs - originMs, start + MIN_CUE_MS) };
  });
}

/** One line: any line break (CR, LF, CRLF, U+2028, U+2029, NEL, VT, FF) becomes a space, so
 * a caption or a correction cannot end its cue and start cues of its own in VTT/SRT/TXT. */
export function oneLine(text) {
  return String(text).replace(/[ \t]*(?:[\n\r\u2028\u2029\u0085\v\f][ \t]*)+/g, " ");
}

function escapeVtt(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** WebVTT with one cue per final, the speaker as a voice span: `<v Name>text</v>`. */
export function toVTT(entries, { lang = null, originMs = 0 } = {}) {
  const out = ["WEBVTT", ""];
  cues(entries, originMs).forEach(({ entry, start, end }, i) => {
    // a voice name ends at ">", and a cue text line must not contain "-->"
    const voice = escapeVtt(oneLine(entry.name)).replace(/-->/g, "--&gt;");
    const text = escapeVtt(oneLine(textIn(entry, lang))).replace(/-->/g, "--&gt;");
    out.push(String(i + 1), `${timestamp(start)} --> ${timestamp(end)}`, `<v ${voice}>${text}</v>`, "");
  });
  return out.join("\n");
}

/** SubRip: numbered cues, "Name: text". */
export function toSRT(entries, { lang = null, originMs = 0 } = {}) {
  const out = [];
  cues(entries, originMs).forEach(({ entry, start, end }, i) => {
    out.push(String(i + 1), `${timestamp(start, ",")} --> ${timestamp(end, ",")}`, `${oneLine(entry.name)}: ${oneLine(textIn(entry, lang))}`, "");
  });
  return out.join("\n");
}

/** Plain text, one line per final: "[HH:MM:SS] Name: text". */
export function toTXT(entries, { lang = null, originMs = 0 } = {}) {
  return cues(entries, originMs)
    .map(({ entry, start }) => `[${timestamp(start).slice(0, 8)}] ${oneLine(entry.name)}: ${oneLine(textIn(entry, lang))}`)
    .join("\n") + (entries.length ? "\n" : "");
}

/** JSON with everything: originals, every translation, wall-clock and relative times. */
export function toJSON(entries, { lang = null, originMs = 0, room = null } = {}) {
  return JSON.stringify({
    room,
    language: lang,
    started_at: new Date(originMs).toISOString(),
    machine_generated: true,
    entries: cues(entries, originMs).map(({ entry, start, end }) => ({
      participant_id: entry.participantId,
      name: entry.name,
      lang: entry.lang,
      start_s: start / 1000,
      end_s: end / 1000,
      at: new Date(entry.startMs).toISOString(),
      text: entry.text,
      translations: entry.translations,
      ...(lang ? { text_in_language: textIn(entry, lang) } : {}),
    })),
  }, null, 2) + "\n";
}

export const FORMATS = Object.freeze({
  vtt: { render: toVTT, mime: "text/vtt", ext: "vtt" },
  srt: { render: toSRT, mime: "application/x-subrip", ext: "srt" },
  txt: { render: toTXT, mime: "text/plain", ext: "txt" },
  json: { render: toJSON, mime: "application/json", ext: "json" },
});

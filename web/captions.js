// Caption layout: pure logic, no DOM (unit-tested with `node --test`, see tests/unit/web/).
//
// - wrapText(): greedy line breaking into <= maxChars "characters" per line (code points),
//   between words for space-separated scripts, between characters for Chinese and Japanese,
//   without starting a line with closing punctuation (kinsoku). Greedy breaking is *online*:
//   appending text never moves a break that is already followed by a complete line, which is
//   what keeps committed caption lines still while the interim grows.
// - CaptionBoard: folds `caption` messages (PROTOCOL.md) into what a caption region shows: per
//   recent speaker, at most MAX_LINES lines per language, each line split into a stable part
//   (finals and the interim's first `stable_chars`) and a provisional part.

export const LATIN_LINE_CHARS = 42;
export const CJK_LINE_CHARS = 16;
export const MAX_LINES = 2;
/** A speaker's captions disappear after this much silence (and their lines start afresh). */
export const CLEAR_AFTER_MS = 8000;
/** At most this many speakers' captions at once (the most recent ones). */
export const MAX_SPEAKERS = 2;

const WIDE_LANGS = new Set(["zh", "ja", "ko", "yue"]);
/** Scripts written without spaces between words: a line may break between any two characters. */
const NO_SPACE_LANGS = new Set(["zh", "ja", "yue", "th", "lo", "km", "my"]);
const CJK_CHAR = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\u3000-\u303f\uff00-\uffef]/u;
const WIDE_CHAR = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
/** May not start a line (closing brackets, stops, small kana, prolonged sound mark). */
const NO_LINE_START = new Set([..."、。，．,.!?！？:;：；)]}）」』】》〉〕”’ぁぃぅぇぉっゃゅょァィゥェォッャュョー…"]);
/** May not end a line (opening brackets). */
const NO_LINE_END = new Set([..."([{（「『【《〈〔“‘"]);

/** Line length for a language (ISO 639-1), or for the script of `text` when unknown. */
export function lineLimit(lang, text = "") {
  const base = (lang || "").toLowerCase().split("-")[0];
  if (WIDE_LANGS.has(base)) return CJK_LINE_CHARS;
  if (!base && WIDE_CHAR.test(text)) return CJK_LINE_CHARS;
  return LATIN_LINE_CHARS;
}

/** How captions of `lang` are joined: no space for scripts written without spaces. */
export function joiner(lang, text = "") {
  const base = (lang || "").toLowerCase().split("-")[0];
  if (NO_SPACE_LANGS.has(base)) return "";
  if (!base && CJK_CHAR.test(text)) return "";
  return " ";
}

/** Collapse runs of white space to one space and trim. */
export function normalizeSpace(text) {
  return String(text).replace(/\s+/gu, " ").trim();
}

/** The UTF-16 length of the first `n` code points of `text` (servers count code points). */
export function codePointPrefixLength(text, n) {
  let units = 0;
  let count = 0;
  for (const ch of text) {
    if (count >= n) break;
    units += ch.length;
    count += 1;
  }
  return units;
}

/**
 * Tokens of `text` (already normalized): {start, end, space} where `space` says a space
 * precedes the token. A token is a word, or one CJK character with the punctuation glued to it.
 */
function tokenize(text) {
  const tokens = [];
  let i = 0;
  const chars = Array.from(text);
  let offset = 0;
  let space = false;
  while (i < chars.length) {
    const ch = chars[i];
    if (ch === " ") {
      space = true;
      offset += 1;
      i += 1;
      continue;
    }
    const start = offset;
    if (CJK_CHAR.test(ch) && !NO_LINE_START.has(ch)) {
      offset += ch.length;
      i += 1;
    } else {
      // a run of non-space, non-CJK characters (a word, a number) or stray punctuation
      while (i < chars.length && chars[i] !== " " && !(CJK_CHAR.test(chars[i]) && !NO_LINE_START.has(chars[i]) && offset > start)) {
        offset += chars[i].length;
        i += 1;
      }
    }
    // glue following closing punctuation (no space before it) to this token
    while (i < chars.length && NO_LINE_START.has(chars[i])) {
      offset += chars[i].length;
      i += 1;
    }
    const prev = tokens[tokens.length - 1];
    // an opening bracket never ends a line: glue it to what follows
    if (prev && !space && NO_LINE_END.has(lastChar(text.slice(prev.start, prev.end)))) {
      prev.end = offset;
    } else {
      tokens.push({ start, end: offset, space });
    }
    space = false;
  }
  return tokens;
}

function lastChar(s) {
  const arr = Array.from(s);
  return arr[arr.length - 1] || "";
}

function cpLength(s) {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}

/**
 * Break `text` into lines of at most `maxChars` code points (a longer word is cut).
 * Returns [{start, end}] ranges into normalizeSpace(text); spaces at breaks are dropped.
 */
export function wrapRanges(text, maxChars) {
  const norm = normalizeSpace(text);
  const lines = [];
  let line = null; // {start, end, width}
  for (const tok of tokenize(norm)) {
    let piece = norm.slice(tok.start, tok.end);
    let start = tok.start;
    let width = cpLength(piece);
    const gap = line && tok.space ? 1 : 0;
    if (line && line.width + gap + width <= maxChars) {
      line.end = tok.end;
      line.width += gap + width;
      continue;
    }
    if (line) lines.push({ start: line.start, end: line.end });
    // a token longer than a line is cut into line-sized pieces
    while (width > maxChars) {
      const cut = codePointPrefixLength(piece, maxChars);
      lines.push({ start, end: start + cut });
      start += cut;
      piece = piece.slice(cut);
      width -= maxChars;
    }
    line = { start, end: tok.end, width };
  }
  if (line && line.end > line.start) lines.push({ start: line.start, end: line.end });
  return lines;
}

/** Break `text` into lines (strings); see wrapRanges. */
export function wrapText(text, maxChars) {
  const norm = normalizeSpace(text);
  return wrapRanges(norm, maxChars).map(({ start, end }) => norm.slice(start, end));
}

/**
 * One speaker's captions in one language, laid out as lines. Finals are appended to `pending`
 * (the last, still-open line); every line before it is frozen and never changes again.
 */
export class CaptionLines {
  constructor(lang, maxLines = MAX_LINES) {
    this.lang = lang;
    this.maxLines = maxLines;
    this.frozen = []; // strings, oldest first (at most maxLines kept)
    this.pending = ""; // final text not yet in a complete line
    this.interim = null; // {text, stableLength} (UTF-16 units) or null
  }

  _join(a, b) {
    if (!a) return b;
    if (!b) return a;
    return a + joiner(this.lang, a + b) + b;
  }

  /** Commit final text (replaces the interim). */
  addFinal(text) {
    this.interim = null;
    const norm = normalizeSpace(text);
    if (!norm) return;
    const all = this._join(this.pending, norm);
    const limit = lineLimit(this.lang, all);
    const lines = wrapText(all, limit);
    this.pending = lines.pop() || "";
    this.frozen.push(...lines);
    if (this.frozen.length > this.maxLines) this.frozen.splice(0, this.frozen.length - this.maxLines);
  }

  /** Show interim text; its first `stableChars` code points will not change. */
  setInterim(text, stableChars = 0) {
    const raw = String(text);
    const stableRaw = raw.slice(0, codePointPrefixLength(raw, Math.max(0, stableChars)));
    const norm = normalizeSpace(raw);
    const stableNorm = stableRaw.replace(/\s+/gu, " ").replace(/^ /u, "");
    this.interim = norm ? { text: norm, stableLength: Math.min(stableNorm.length, norm.length) } : null;
  }

  clearInterim() {
    this.interim = null;
  }

  /** The lines to show: [{stable, provisional}], at most maxLines, oldest first. */
  lines() {
    let text = this.pending;
    let stableLength = text.length;
    if (this.interim) {
      const joined = this._join(this.pending, this.interim.text);
      stableLength = joined.length - this.interim.text.length + this.interim.stableLength;
      text = joined;
    }
    const limit = lineLimit(this.lang, text);
    const tail = wrapRanges(text, limit).map(({ start, end }) => ({
      stable: text.slice(start, Math.max(start, Math.min(end, stableLength))),
      provisional: text.slice(Math.max(start, Math.min(end, stableLength)), end),
    }));
    const frozen = this.frozen.map((line) => ({ stable: line, provisional: "" }));
    return [...frozen, ...tail].slice(-this.maxLines);
  }
}

/**
 * Which language a reader sees a caption in, and the text: the first of `languages` the caption
 * is spoken in or translated into; else the original (with the reason there is no translation).
 */
export function chooseText(caption, languages) {
  const translations = caption.translations || {};
  for (const lang of languages) {
    if (lang === caption.lang) return { lang, text: caption.text, original: true };
    if (translations[lang]) return { lang, text: translations[lang], original: false };
  }
  const wanted = languages[0];
  const reason = wanted && caption.untranslated ? caption.untranslated[wanted] : undefined;
  return { lang: caption.lang, text: caption.text, original: true, reason };
}

/** The reader's `languages` they would rather read than the original `lang` (all before it). */
export function preferredOverOriginal(lang, languages) {
  const at = languages.indexOf(lang);
  return at < 0 ? [...languages] : languages.slice(0, at);
}

/**
 * All speakers' captions for one reader. `apply(message, nowMs)` takes `caption` messages;
 * `view(nowMs)` says what to show:
 *   [{participantId, lastMs, rows: [{role: "source"|"translation", lang, lines: [{stable, provisional}]}]}]
 * The primary row is the reader's language (a translation, or the original when the speaker
 * speaks it); bilingual mode adds the original above it.
 */
export class CaptionBoard {
  constructor({ languages = [], bilingual = false, clearAfterMs = CLEAR_AFTER_MS, maxSpeakers = MAX_SPEAKERS } = {}) {
    this.languages = [...languages];
    this.bilingual = bilingual;
    this.clearAfterMs = clearAfterMs;
    this.maxSpeakers = maxSpeakers;
    this.speakers = new Map(); // participant id -> {lastMs, lang, source: CaptionLines, target: Map lang -> CaptionLines, interimId}
    this.shownAny = false;
  }

  setLanguages(languages) {
    this.languages = [...languages];
    this.speakers.clear(); // lines in the old language make no sense in the new one
  }

  setBilingual(bilingual) {
    this.bilingual = Boolean(bilingual);
  }

  _speaker(id, lang, nowMs) {
    let sp = this.speakers.get(id);
    if (sp && (nowMs - sp.lastMs > this.clearAfterMs || sp.lang !== lang)) sp = null;
    if (!sp) {
      sp = { lastMs: nowMs, lang, source: new CaptionLines(lang), target: null, targetLang: null, reason: undefined };
      this.speakers.set(id, sp);
    }
    return sp;
  }

  apply(caption, nowMs) {
    const sp = this._speaker(caption.participant_id, caption.lang, nowMs);
    sp.lastMs = nowMs;
    const stable = caption.final ? Infinity : Number(caption.stable_chars) || 0;
    if (caption.final) sp.source.addFinal(caption.text);
    else sp.source.setInterim(caption.text, stable);
    // the reader's languages ranked above the original: an "also" language the speaker happens
    // to speak must not replace the main one (the transcript and chat choose the same way)
    const ahead = preferredOverOriginal(caption.lang, this.languages);
    const original = ahead.length === 0;
    const translations = caption.translations || {};
    const targetLang = original ? null : ahead.find((lang) => translations[lang]);
    sp.translating = !original;
    if (original) {
      sp.target = null;
      sp.targetLang = null;
      sp.reason = undefined;
    } else if (targetLang) {
      if (!sp.target || sp.targetLang !== targetLang) {
        sp.target = new CaptionLines(targetLang);
        sp.targetLang = targetLang;
      }
      sp.reason = undefined;
      // a translated interim may change anywhere: all of it is provisional
      if (caption.final) sp.target.addFinal(translations[targetLang]);
      else sp.target.setInterim(translations[targetLang], 0);
    } else if (caption.final) {
      // nothing translates this final: show the original, saying why
      const chosen = chooseText(caption, this.languages);
      sp.reason = chosen.reason || "no translation";
      if (sp.target) sp.target.addFinal(caption.text);
    }
    // an interim without a translation (the engine was too slow for it) leaves the previous
    // provisional translation where it is: the final brings the real one
    this.shownAny = true;
  }

  /** A speaker's interim is gone (e.g. they left): drop it. */
  removeSpeaker(participantId) {
    this.speakers.delete(participantId);
  }

  view(nowMs) {
    const live = [...this.speakers.entries()]
      .filter(([, sp]) => nowMs - sp.lastMs <= this.clearAfterMs)
      .sort((a, b) => a[1].lastMs - b[1].lastMs)
      .slice(-this.maxSpeakers);
    return live.map(([participantId, sp]) => {
      const rows = [];
      if (sp.target) {
        if (this.bilingual) rows.push({ role: "source", lang: sp.lang, lines: sp.source.lines() });
        rows.push({ role: "translation", lang: sp.targetLang, lines: sp.target.lines() });
      } else if (!sp.translating || sp.reason || this.bilingual) {
        // (while translating, the original alone shows only when nothing translates it)
        rows.push({ role: "source", lang: sp.lang, lines: sp.source.lines(), reason: sp.reason });
      }
      return { participantId, lastMs: sp.lastMs, rows: rows.filter((r) => r.lines.length) };
    }).filter((block) => block.rows.length);
  }
}

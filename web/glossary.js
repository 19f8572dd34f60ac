// The room glossary as text, one entry per line, for the console's editor (PROTOCOL.md "Room
// glossary"). Pure functions (unit tests in tests/unit/web/glossary.test.mjs):
//
//   Sintra = es: Sintra; fr: Sintra      a rendering per target language
//   Parley @en = keep                     said in English; never translated
//   UN @en = keep; es: ONU                 kept, except in Spanish
//   # a comment
import { t } from "./i18n.js";

const LANG = /^[a-z]{2,3}$/;

/** Text -> {entries, errors: [{line, message}]}; entries as `glossary_set` wants them. */
export function parseGlossary(text) {
  const entries = [];
  const errors = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const fail = (message) => errors.push({ line: index + 1, message });
    const eq = line.indexOf("=");
    if (eq < 0) return fail(t("glossary.noEquals"));
    let term = line.slice(0, eq).trim();
    let lang = null;
    const at = term.match(/^(.*?)\s+@([a-z]{2,3})$/);
    if (at) [, term, lang] = at;
    if (!term) return fail(t("glossary.emptyTerm"));
    if (term.length > 100) return fail(t("glossary.longTerm"));
    const entry = { term, lang, renderings: {}, keep: false };
    for (const part of line.slice(eq + 1).split(";").map((p) => p.trim()).filter(Boolean)) {
      if (part.toLowerCase() === "keep") {
        entry.keep = true;
        continue;
      }
      const colon = part.indexOf(":");
      const code = colon < 0 ? "" : part.slice(0, colon).trim().toLowerCase();
      const rendering = colon < 0 ? "" : part.slice(colon + 1).trim();
      if (!LANG.test(code) || !rendering) return fail(t("glossary.badPart", { part }));
      entry.renderings[code] = rendering;
    }
    if (!entry.keep && !Object.keys(entry.renderings).length) return fail(t("glossary.noRenderings"));
    entries.push(entry);
  });
  return { entries, errors };
}

/** Entries (as the server sends them) -> the text parseGlossary reads back. */
export function formatGlossary(entries) {
  return (entries || []).map((e) => {
    const parts = [];
    if (e.keep) parts.push("keep");
    for (const [code, rendering] of Object.entries(e.renderings || {})) parts.push(`${code}: ${rendering}`);
    return `${e.term}${e.lang ? ` @${e.lang}` : ""} = ${parts.join("; ")}`;
  }).join("\n");
}

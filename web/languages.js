// Languages offered for speaking and reading captions (ISO 639-1), with display names in the
// interface language (web/i18n.js), not the browser's.
import { languageLabel, uiLanguage } from "./i18n.js";

/** Languages Whisper recognizes well and the usual translation engines cover. */
export const LANGUAGES = Object.freeze([
  "en", "es", "fr", "de", "it", "pt", "nl", "ca", "gl", "eu", "ro", "pl", "cs", "sv", "da",
  "nb", "fi", "ru", "uk", "tr", "el", "ar", "he", "hi", "id", "vi", "zh", "ja", "ko",
]);

/** "Spanish" in the interface language (falls back to the code). */
export function languageName(code) {
  return languageLabel(code);
}

/** Fill a <select> with `LANGUAGES`, after `first` ([value, label]) options; select `value`. */
export function fillLanguageSelect(select, { first = [], value = "" } = {}) {
  const options = first.map(([v, label]) => new Option(label, v));
  const sorted = [...LANGUAGES].sort((a, b) => languageName(a).localeCompare(languageName(b), uiLanguage()));
  for (const code of sorted) options.push(new Option(`${languageName(code)} (${code})`, code));
  select.replaceChildren(...options);
  select.value = value;
  if (select.value !== value) select.selectedIndex = 0;
}

/** The browser's preferred language, if we offer it. */
export function preferredLanguage() {
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = tag.toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

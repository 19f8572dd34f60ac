// The interface language: plain message catalogs, one module per language (web/i18n/<code>.js,
// each `export default {key: text}`), no build step. t(key, params) fills `{name}` placeholders
// (no plural rules: the texts are phrased so that none is needed). The choice is remembered in
// localStorage; without one, the browser's languages pick (navigator.languages), else English.
// Elements marked data-i18n / data-i18n-aria-label / -title / -placeholder (params as JSON in
// data-i18n-params) are translated by translatePage(), and again whenever the language changes.

/** The six U.N. languages, in the order the picker lists them. */
export const UI_LANGUAGES = Object.freeze(["ar", "zh", "en", "fr", "ru", "es"]);
export const FALLBACK = "en";
const RTL = new Set(["ar"]);
const STORE_KEY = "parley.uiLang";
const ATTRIBUTES = Object.freeze(["aria-label", "title", "placeholder"]);

let current = FALLBACK;
let messages = {};
let fallback = {};
const listeners = new Set();

/** The interface language for a stored choice and the browser's preferences. Pure. */
export function chooseLanguage(stored, preferred = []) {
  if (UI_LANGUAGES.includes(stored)) return stored;
  for (const tag of preferred) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (UI_LANGUAGES.includes(base)) return base;
  }
  return FALLBACK;
}

/** `text` with each `{name}` replaced by params[name] (unknown placeholders stay). Pure. */
export function fill(text, params = {}) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** The message `key` in the interface language (English when a catalog lacks it). */
export function t(key, params = {}) {
  const text = messages[key] ?? fallback[key];
  if (text === undefined) {
    console.warn("i18n: no message", key);
    return key;
  }
  return fill(text, params);
}

export function uiLanguage() {
  return current;
}

export function isRtl(code = current) {
  return RTL.has(code);
}

async function load(code) {
  return (await import(`./i18n/${code}.js`)).default;
}

/** Switch the interface language: load its catalog, set <html lang dir>, retranslate. */
export async function setUiLanguage(code, { remember = true } = {}) {
  const chosen = UI_LANGUAGES.includes(code) ? code : FALLBACK;
  if (!Object.keys(fallback).length) fallback = await load(FALLBACK);
  messages = chosen === FALLBACK ? fallback : await load(chosen);
  current = chosen;
  if (remember && typeof localStorage !== "undefined") localStorage.setItem(STORE_KEY, chosen);
  if (typeof document !== "undefined") {
    document.documentElement.lang = chosen;
    document.documentElement.dir = isRtl(chosen) ? "rtl" : "ltr";
    translatePage(document);
  }
  for (const listener of listeners) listener(chosen);
}

/** Call `listener(code)` after every change of language. */
export function onLanguageChange(listener) {
  listeners.add(listener);
}

/** Set `el`'s text to a message and remember the key, so that a change of language redoes it. */
export function setText(el, key, params) {
  el.dataset.i18n = key;
  if (params && Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  else delete el.dataset.i18nParams;
  el.textContent = t(key, params);
}

/** The same for an attribute ("aria-label", "title" or "placeholder"). */
export function setAttr(el, attribute, key, params) {
  el.setAttribute(`data-i18n-${attribute}`, key);
  if (params && Object.keys(params).length) el.dataset.i18nParams = JSON.stringify(params);
  el.setAttribute(attribute, t(key, params));
}

/** Translate every marked element under `root`. */
export function translatePage(root) {
  const params = (el) => {
    try {
      return el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : {};
    } catch {
      return {};
    }
  };
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n, params(el));
  for (const attribute of ATTRIBUTES) {
    for (const el of root.querySelectorAll(`[data-i18n-${attribute}]`)) {
      el.setAttribute(attribute, t(el.getAttribute(`data-i18n-${attribute}`), params(el)));
    }
  }
}

/** Fill a <select> with the interface languages, each in its own name, and wire it. */
export function bindLanguagePicker(select) {
  const own = (code) => {
    try {
      const name = new Intl.DisplayNames([code], { type: "language" }).of(code) || code;
      return name.charAt(0).toLocaleUpperCase(code) + name.slice(1);
    } catch {
      return code;
    }
  };
  select.replaceChildren(...UI_LANGUAGES.map((code) => {
    const option = new Option(own(code), code);
    option.lang = code;
    return option;
  }));
  select.value = current;
  select.addEventListener("change", () => setUiLanguage(select.value));
  onLanguageChange((code) => { select.value = code; });
}

/** "Spanish" in the interface language (the code when the browser has no name for it). */
export function languageLabel(code) {
  if (!code) return "";
  try {
    return new Intl.DisplayNames([current], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

const stored = typeof localStorage !== "undefined" ? localStorage.getItem(STORE_KEY) : null;
const preferred = typeof navigator !== "undefined" ? navigator.languages || [navigator.language] : [];
await setUiLanguage(chooseLanguage(stored, preferred), { remember: false });

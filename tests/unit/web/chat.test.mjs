// Unit tests of chatText (web/chatview.js): which text of a chat message a reader sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chatText } from "../../../web/chatview.js";

const message = { message_id: "m1", from: "a", lang: "en", text: "Good morning", translations: { es: "Buenos días" } };

test("a Spanish reader sees the translation", () => {
  assert.deepEqual(chatText(message, ["es"]), { text: "Buenos días", lang: "es", translated: true });
});

test("a reader of the original's language sees the original", () => {
  assert.equal(chatText(message, ["en", "es"]).text, "Good morning");
  assert.equal(chatText(message, []).text, "Good morning");
});

test("no translation: the original, with the reason", () => {
  const m = { ...message, translations: {}, untranslated: { ja: "no translation en→ja" } };
  assert.deepEqual(chatText(m, ["ja"]), { text: "Good morning", lang: "en", translated: false, reason: "no translation en→ja" });
});

// Issue 13 bug 1: the caption bar, the transcript panel and chat pick the same language for a
// reader ("read in Spanish, also English"), and bilingual shows the original + the main language.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CaptionBoard, chooseText } from "../../../web/captions.js";
import { chatText } from "../../../web/chatview.js";

const caption = {
  type: "caption", participant_id: "p1", caption_id: "c1", lang: "en", final: true,
  text: "Good morning everyone", translations: { es: "Buenos días a todos" }, stable_chars: 0,
};
const SPANISH_ALSO_ENGLISH = ["es", "en"];

function barRows(board) {
  return board.view(0)[0].rows.map((r) => ({ role: r.role, lang: r.lang, text: r.lines.map((l) => l.stable + l.provisional).join(" ") }));
}

test("also-in English does not replace main Spanish in the caption bar", () => {
  const board = new CaptionBoard({ languages: SPANISH_ALSO_ENGLISH });
  board.apply(caption, 0);
  assert.deepEqual(barRows(board), [{ role: "translation", lang: "es", text: "Buenos días a todos" }]);
});

test("bilingual shows the original and the main language", () => {
  const board = new CaptionBoard({ languages: SPANISH_ALSO_ENGLISH, bilingual: true });
  board.apply(caption, 0);
  assert.deepEqual(barRows(board), [
    { role: "source", lang: "en", text: "Good morning everyone" },
    { role: "translation", lang: "es", text: "Buenos días a todos" },
  ]);
});

test("caption bar, transcript choice and chat agree", () => {
  const cases = [
    [caption, SPANISH_ALSO_ENGLISH, "es"],
    [{ ...caption, translations: {} }, SPANISH_ALSO_ENGLISH, "en"], // no Spanish: the also-language original
    [{ ...caption, lang: "fr", text: "Bonjour", translations: { en: "Hello" } }, SPANISH_ALSO_ENGLISH, "en"],
    [{ ...caption, lang: "es", text: "Hola", translations: { en: "Hello" } }, SPANISH_ALSO_ENGLISH, "es"],
    [caption, ["en", "es"], "en"],
  ];
  for (const [c, languages, expected] of cases) {
    const board = new CaptionBoard({ languages });
    board.apply(c, 0);
    const rows = barRows(board);
    const bar = rows[rows.length - 1];
    const chosen = chooseText(c, languages);
    const chat = chatText({ ...c, message_id: "m" }, languages);
    assert.equal(chosen.lang, expected, JSON.stringify([c.lang, languages, "transcript"]));
    assert.equal(bar.lang === c.lang && !c.translations[bar.lang] ? c.lang : bar.lang, expected, JSON.stringify([c.lang, languages, "bar"]));
    assert.equal(chat.lang, expected, JSON.stringify([c.lang, languages, "chat"]));
    assert.equal(bar.text, chosen.text);
    assert.equal(chat.text, chosen.text);
  }
});

test("an interim without a translation keeps the main-language reading", () => {
  const board = new CaptionBoard({ languages: SPANISH_ALSO_ENGLISH });
  board.apply({ ...caption, final: false, caption_id: "c2", text: "Good", translations: { es: "Buen" } }, 0);
  board.apply({ ...caption, final: false, caption_id: "c2", text: "Good morning", translations: {} }, 1);
  const rows = barRows(board);
  assert.deepEqual(rows.map((r) => r.lang), ["es"]);
});

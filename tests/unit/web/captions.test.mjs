// Unit tests of web/captions.js (pure caption layout). Run: node --test tests/unit/web/
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CaptionBoard, CaptionLines, LATIN_LINE_CHARS, CJK_LINE_CHARS, lineLimit, wrapText, wrapRanges,
} from "../../../web/captions.js";

const SENTENCE = "However, due to the slow communication channels, styles in the west could lag behind by 25 to 30 years.";

test("latin text wraps between words within 42 characters", () => {
  const lines = wrapText(SENTENCE, LATIN_LINE_CHARS);
  assert.ok(lines.length >= 3);
  for (const line of lines) assert.ok(line.length <= 42, line);
  assert.equal(lines.join(" "), SENTENCE);
  assert.equal(lines[0], "However, due to the slow communication");
});

test("a word longer than a line is cut", () => {
  assert.deepEqual(wrapText("a " + "x".repeat(50), 42), ["a", "x".repeat(42), "x".repeat(8)]);
});

test("white space is normalized and ranges index the normalized text", () => {
  const ranges = wrapRanges("  one \n two  ", 42);
  assert.deepEqual(ranges, [{ start: 0, end: 7 }]);
});

test("chinese breaks between characters, at most 16, never before closing punctuation", () => {
  const zh = "然而，由于文化交流迟缓，西方的时尚可能落后二十五到三十年。";
  assert.equal(lineLimit("zh"), CJK_LINE_CHARS);
  const lines = wrapText(zh, CJK_LINE_CHARS);
  assert.equal(lines.join(""), zh);
  for (const line of lines) {
    assert.ok([...line].length <= 16, line);
    assert.ok(!"，。、".includes(line[0]), line);
  }
});

test("japanese keeps latin runs whole", () => {
  const lines = wrapText("すべての名詞は、単語Sieと同様に、文の途中であっても常に大文字で始まります。", 16);
  assert.ok(lines.some((l) => l.includes("Sie")));
  for (const line of lines) assert.ok([...line].length <= 16, line);
});

test("korean wraps between words with the CJK width", () => {
  assert.equal(lineLimit("ko"), 16);
  const lines = wrapText("양배추 주스는 화학 물질이 얼마나 산성 혹은 염기성인지에 따라 색이 변합니다.", 16);
  for (const line of lines) assert.ok([...line].length <= 16, line);
  assert.ok(lines.every((l) => !l.startsWith(" ")));
});

test("unknown language falls back to the script of the text", () => {
  assert.equal(lineLimit(undefined, "你好世界"), 16);
  assert.equal(lineLimit(undefined, "hello"), 42);
  assert.equal(lineLimit("es"), 42);
});

test("greedy wrapping is online: appending text never moves an earlier complete line", () => {
  const words = SENTENCE.split(" ");
  let previous = [];
  for (let n = 1; n <= words.length; n++) {
    const lines = wrapText(words.slice(0, n).join(" "), 42);
    // every line but the last of the previous layout is unchanged
    for (let i = 0; i < previous.length - 1; i++) assert.equal(lines[i], previous[i]);
    previous = lines;
  }
});

test("interim: stable prefix and provisional rest, at most 2 lines", () => {
  const track = new CaptionLines("en");
  track.setInterim("the slow communication channels", 9);
  assert.deepEqual(track.lines(), [{ stable: "the slow ", provisional: "communication channels" }]);
  track.addFinal(SENTENCE);
  const lines = track.lines();
  assert.equal(lines.length, 2);
  for (const l of lines) assert.equal(l.provisional, "");
  assert.ok(SENTENCE.endsWith(lines[1].stable));
});

test("stable_chars counts code points", () => {
  const track = new CaptionLines("en");
  track.setInterim("😀 ok fine", 4);
  assert.deepEqual(track.lines(), [{ stable: "😀 ok", provisional: " fine" }]);
});

test("finals stay still while the next interim grows", () => {
  const track = new CaptionLines("en");
  track.addFinal("However, due to the slow communication channels,");
  const before = track.lines().map((l) => l.stable);
  track.setInterim("styles", 0);
  const after = track.lines();
  // the first line is the same text; the open line only grew
  assert.equal(after[0].stable, before[0]);
  assert.ok(after[1].stable.startsWith(before[1]));
  assert.equal(after[1].provisional, "styles");
});

function caption(fields) {
  return { caption_id: "c1", participant_id: "p1", lang: "en", text: "", final: false, stable_chars: 0, start_s: 0, end_s: 1, translations: {}, ...fields };
}

test("board: spanish reader sees the translation; bilingual adds the original", () => {
  const board = new CaptionBoard({ languages: ["es"] });
  board.apply(caption({ text: "hello everyone", stable_chars: 6 }), 0);
  assert.deepEqual(board.view(0), []); // no translation of the interim yet: nothing flips language
  board.apply(caption({ text: "hello everyone", final: true, translations: { es: "hola a todos" } }), 100);
  let view = board.view(200);
  assert.equal(view.length, 1);
  assert.deepEqual(view[0].rows.map((r) => [r.role, r.lang]), [["translation", "es"]]);
  assert.equal(view[0].rows[0].lines[0].stable, "hola a todos");
  board.setBilingual(true);
  view = board.view(200);
  assert.deepEqual(view[0].rows.map((r) => r.role), ["source", "translation"]);
  assert.equal(view[0].rows[0].lines[0].stable, "hello everyone");
});

test("board: the reader's own language shows the original with stable_chars", () => {
  const board = new CaptionBoard({ languages: ["en"] });
  board.apply(caption({ text: "good morning all", stable_chars: 5 }), 0);
  assert.deepEqual(board.view(0)[0].rows[0].lines, [{ stable: "good ", provisional: "morning all" }]);
});

test("board: untranslated finals show the original with the reason", () => {
  const board = new CaptionBoard({ languages: ["ja"] });
  board.apply(caption({ text: "hello", final: true, untranslated: { ja: "no translation en→ja" } }), 0);
  const row = board.view(0)[0].rows[0];
  assert.equal(row.role, "source");
  assert.equal(row.reason, "no translation en→ja");
});

test("board: captions clear after silence, most recent two speakers only", () => {
  const board = new CaptionBoard({ languages: ["en"], clearAfterMs: 1000 });
  for (const [i, p] of ["a", "b", "c"].entries()) {
    board.apply(caption({ caption_id: p, participant_id: p, text: p, final: true }), i * 10);
  }
  assert.deepEqual(board.view(30).map((b) => b.participantId), ["b", "c"]);
  assert.deepEqual(board.view(5000), []);
});

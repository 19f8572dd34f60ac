// Unit tests of web/transcript.js (transcript store and export formats). Run: node --test tests/unit/web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { Transcript, toJSON, toSRT, toTXT, toVTT, timestamp } from "../../../web/transcript.js";

function final(id, pid, startS, endS, text, es) {
  return { caption_id: id, participant_id: pid, lang: "en", text, final: true, start_s: startS, end_s: endS, translations: es ? { es } : {} };
}

function sample() {
  const t = new Transcript({ originMs: 1_000_000 });
  // speaker p1's clock started at wall 1_000_500; finals arrive 900 ms and 700 ms late
  t.add(final("a", "p1", 1.0, 8.7, "However, due to the slow channels.", "Sin embargo, debido a los canales lentos."), "Alice", 1_000_500 + 8_700 + 900);
  t.add(final("b", "p1", 12.2, 19.5, "All nouns <begin> with a capital & more.", "Todos los sustantivos."), "Alice", 1_000_500 + 19_500 + 700);
  return t;
}

test("timestamps", () => {
  assert.equal(timestamp(0), "00:00:00.000");
  assert.equal(timestamp(3_723_456), "01:02:03.456");
  assert.equal(timestamp(1_234, ","), "00:00:01,234");
});

test("interims and repeated finals are ignored", () => {
  const t = sample();
  assert.equal(t.add({ ...final("c", "p1", 20, 21, "x"), final: false }, "Alice", 1), null);
  assert.equal(t.add(final("a", "p1", 1, 2, "again"), "Alice", 1), null);
  assert.equal(t.entries.length, 2);
});

test("speaker clock mapped with the smallest lag", () => {
  const t = sample();
  // first estimate: lag 900 ms -> offset 1_000_500 + 900 - 0; the second final refines it to +700
  assert.equal(t.entries[1].startMs, 1_000_500 + 700 + 12_200);
  assert.equal(t.entries[0].startMs, 1_000_500 + 900 + 1_000);
});

test("entries stay in time order across speakers", () => {
  const t = new Transcript({ originMs: 0 });
  t.add(final("x", "p2", 5, 6, "later"), "Bob", 6_100);
  t.add(final("y", "p1", 1, 2, "earlier"), "Alice", 2_900); // added later, happened earlier
  assert.deepEqual(t.entries.map((e) => e.text), ["earlier", "later"]);
});

test("WebVTT: header, voice spans with names, escaped text, increasing times", () => {
  const vtt = toVTT(sample().entries, { lang: "es", originMs: 1_000_000 });
  const lines = vtt.split("\n");
  assert.equal(lines[0], "WEBVTT");
  assert.equal(lines[2], "1");
  assert.equal(lines[3], "00:00:02.400 --> 00:00:10.100");
  assert.equal(lines[4], "<v Alice>Sin embargo, debido a los canales lentos.</v>");
  const en = toVTT(sample().entries, { originMs: 1_000_000 });
  assert.ok(en.includes("<v Alice>All nouns &lt;begin&gt; with a capital &amp; more.</v>"));
  const starts = [...vtt.matchAll(/^(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})$/gm)].map((m) => [m[1], m[2]]);
  assert.equal(starts.length, 2);
  assert.ok(starts[0][0] < starts[1][0] && starts[0][0] < starts[0][1]);
});

test("VTT cue text never contains the cue arrow", () => {
  const t = new Transcript({ originMs: 0 });
  t.add(final("z", "p", 0, 1, "a --> b"), "X-->Y", 1_100);
  assert.ok(!toVTT(t.entries).split("\n").slice(4).some((l) => l.includes("-->")));
});

test("SRT, TXT and JSON", () => {
  const entries = sample().entries;
  const srt = toSRT(entries, { lang: "es", originMs: 1_000_000 }).split("\n");
  assert.deepEqual(srt.slice(0, 3), ["1", "00:00:02,400 --> 00:00:10,100", "Alice: Sin embargo, debido a los canales lentos."]);
  const txt = toTXT(entries, { originMs: 1_000_000 });
  assert.equal(txt.split("\n")[0], "[00:00:02] Alice: However, due to the slow channels.");
  const json = JSON.parse(toJSON(entries, { lang: "es", originMs: 1_000_000, room: "r" }));
  assert.equal(json.room, "r");
  assert.equal(json.machine_generated, true);
  assert.equal(json.entries[1].translations.es, "Todos los sustantivos.");
  assert.equal(json.entries[1].text_in_language, "Todos los sustantivos.");
  assert.equal(json.entries[0].start_s, 2.4);
});

test("a cue lasts at least half a second", () => {
  const t = new Transcript({ originMs: 0 });
  t.add(final("q", "p", 3, 3, "hm"), "A", 3_000);
  assert.match(toSRT(t.entries), /00:00:03,000 --> 00:00:03,500/);
});

test("line breaks in cue text (a correction) cannot inject cues into VTT, SRT or TXT", () => {
  const evil = "ok\n\n00:00:01.000 --> 00:00:09.000\nInjected\r\r2\r00:00:10,000 --> 00:00:11,000\u2028x\u2029y\r\nz";
  const t = new Transcript({ originMs: 0 });
  t.add(final("e", "p", 0, 1, evil, evil), "Mal\u2028lory", 1_100);
  for (const lang of [null, "es"]) {
    const vtt = toVTT(t.entries, { lang });
    assert.equal(vtt.split(/\r\n|[\n\r\u2028\u2029]/).filter((l) => l.includes("-->")).length, 1);
    assert.equal(vtt.split("\n").length, 6, vtt); // WEBVTT, "", id, timing, text, ""
    const srt = toSRT(t.entries, { lang });
    // SRT has no escapes: an arrow inside a text line is text; a cue starts with a timing line
    assert.equal(srt.split(/\r\n|[\n\r\u2028\u2029]/).filter((l) => /^\d\d:\d\d:\d\d[,.]\d{3} -->/.test(l)).length, 1, srt);
    assert.equal(srt.split("\n").length, 4, srt); // index, timing, text, ""
    assert.ok(!/[\r\u2028\u2029]/.test(vtt + srt));
    const txt = toTXT(t.entries, { lang });
    assert.equal(txt, "[00:00:00] Mal lory: ok 00:00:01.000 --> 00:00:09.000 Injected 2 00:00:10,000 --> 00:00:11,000 x y z\n");
  }
});

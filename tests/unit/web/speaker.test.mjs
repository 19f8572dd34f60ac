// Unit tests of ActiveSpeaker (web/tiles.js): the active speaker from audio levels.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ACTIVE_HOLD_MS, ActiveSpeaker } from "../../../web/tiles.js";

const levels = (obj) => new Map(Object.entries(obj));

test("the loudest participant above the threshold becomes active", () => {
  const a = new ActiveSpeaker();
  assert.equal(a.update(levels({ x: 0.001, y: 0.001 }), 0), null);
  assert.equal(a.update(levels({ x: 0.3, y: 0.05 }), 100), "x");
});

test("no flapping: the active speaker keeps the spot until quiet for the hold time", () => {
  const a = new ActiveSpeaker();
  a.update(levels({ x: 0.3, y: 0 }), 0);
  assert.equal(a.update(levels({ x: 0.1, y: 0.4 }), 200), "x"); // x still talking
  assert.equal(a.update(levels({ x: 0, y: 0.4 }), 400), "x"); // x quiet, but not for long
  assert.equal(a.update(levels({ x: 0, y: 0.4 }), 200 + ACTIVE_HOLD_MS + 1), "y");
});

test("someone who left is no longer active", () => {
  const a = new ActiveSpeaker();
  a.update(levels({ x: 0.3 }), 0);
  assert.equal(a.update(levels({ y: 0.2 }), 100), "y");
  assert.deepEqual([...a.speaking(150)].sort(), ["x", "y"]);
  assert.deepEqual([...a.speaking(1000)], []);
});

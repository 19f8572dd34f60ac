// Unit tests of web/channels.js (pure parts): run by tests/unit/web/test_web_units.py with node --test.
import test from "node:test";
import assert from "node:assert/strict";
import { channelOf, describeEvent, onAirMap, volumes } from "../../../web/channels.js";

const rows = [
  { channel: "fr", on_air: "marie", requested_by: null, expires_in_ms: null },
  { channel: "en", on_air: null, requested_by: null, expires_in_ms: null },
];
const everyone = ["sam", "marie", "jean"];

test("who is on air where", () => {
  assert.deepEqual([...onAirMap(rows)], [["fr", "marie"], ["en", null]]);
  assert.equal(channelOf(rows, "marie"), "fr");
  assert.equal(channelOf(rows, "sam"), null);
});

test("ducking lowers the floor, not the interpreter", () => {
  const got = volumes({ rows, listening: { channel: "fr", duck: true }, participantIds: everyone, selfId: "lena", duckVolume: 0.2 });
  assert.deepEqual(Object.fromEntries(got), { sam: 0.2, marie: 1, jean: 0.2 });
});

test("no ducking without duck, on the floor, or in a channel nobody is on air in", () => {
  for (const listening of [{ channel: "fr", duck: false }, { channel: "floor", duck: true }, { channel: "en", duck: true }]) {
    const got = volumes({ rows, listening, participantIds: everyone, selfId: "lena", duckVolume: 0.2 });
    assert.deepEqual([...got.values()], [1, 1, 1], JSON.stringify(listening));
  }
});

test("the interpreter on air does not duck under themself", () => {
  const got = volumes({ rows, listening: { channel: "fr", duck: true }, participantIds: ["sam"], selfId: "marie", duckVolume: 0.2 });
  assert.equal(got.get("sam"), 1);
});

test("events read as sentences", () => {
  const nameOf = (id) => ({ marie: "Marie", jean: "Jean" })[id];
  const label = (code) => ({ fr: "French" })[code];
  assert.equal(describeEvent({ type: "handover_requested", channel: "fr", by: "jean", to: "marie" }, nameOf, label), "Jean asks to take over French.");
  assert.equal(describeEvent({ type: "handover_accepted", channel: "fr", from: "marie", to: "jean" }, nameOf, label), "Jean took over French.");
  assert.equal(describeEvent(null, nameOf, label), "");
});

// Issue 13 bug 3: what a session does when its media (ICE) fails. Never connected: leave once
// with "ice_failed" (no rejoin); connected, then failed: rejoin after growing waits, at most
// ICE_REJOIN_DELAYS_MS.length times, then leave with "ice_lost".
import { test } from "node:test";
import assert from "node:assert/strict";

import { ICE_REJOIN_DELAYS_MS, MEDIA_FAILURES, ParleySession } from "../../../web/protocol.js";

function joinedSession() {
  const session = new ParleySession({ url: "ws://test/ws", room: "r", name: "n", WebSocketImpl: class {} });
  session.state = "joined";
  const calls = { rejoins: [], left: 0 };
  session.simulateDrop = () => calls.rejoins.push(session._rejoinDelayMs);
  session.leave = () => { calls.left += 1; };
  return { session, calls };
}

test("media that never connected: no rejoin, the reason names TURN", () => {
  const { session, calls } = joinedSession();
  session._onMediaFailed();
  assert.deepEqual(calls, { rejoins: [], left: 1 });
  assert.equal(session._failure.code, "ice_failed");
  assert.match(MEDIA_FAILURES.ice_failed, /TURN/);
});

test("never connected although the server gave a TURN relay: the relay is what to check", () => {
  const { session, calls } = joinedSession();
  session.iceServers = [{ urls: ["turn:turn.example.org:3478?transport=udp"], username: "u", credential: "c" }];
  session._onMediaFailed();
  assert.equal(calls.left, 1);
  assert.equal(session._failure.code, "ice_failed_relay");
  assert.match(session._failure.message, /TURN relay/);
});

test("media that had connected: bounded rejoins with growing waits, then ice_lost", () => {
  const { session, calls } = joinedSession();
  session.mediaConnected = true;
  for (let i = 0; i < ICE_REJOIN_DELAYS_MS.length + 1; i++) session._onMediaFailed();
  assert.deepEqual(calls.rejoins, [...ICE_REJOIN_DELAYS_MS]);
  for (let i = 1; i < calls.rejoins.length; i++) assert.ok(calls.rejoins[i] > calls.rejoins[i - 1]);
  assert.equal(calls.left, 1);
  assert.equal(session._failure.code, "ice_lost");
});

// Issue 18: a session in a cluster. reconnectPlan tries our own server, then every node the
// cluster named, at each backoff step; `redirect` sends the session to the room's node at once,
// and a loop of redirects stops.
import { test } from "node:test";
import assert from "node:assert/strict";

import { fakeSocketClass } from "./fake_socket.mjs";

import {
  CLUSTER_RECONNECT_DELAYS_MS, MAX_REDIRECTS, RECONNECT_DELAYS_MS, ParleySession, reconnectPlan,
} from "../../../web/protocol.js";

const A = "ws://10.0.0.11:8750/ws";
const B = "ws://10.0.0.12:8750/ws";

test("a single server: every attempt goes home with the usual backoff", () => {
  const plans = RECONNECT_DELAYS_MS.map((_, i) => reconnectPlan(i, A, []));
  assert.deepEqual(plans.map((p) => p.url), RECONNECT_DELAYS_MS.map(() => A));
  assert.deepEqual(plans.map((p) => p.delayMs), [...RECONNECT_DELAYS_MS]);
  assert.equal(reconnectPlan(RECONNECT_DELAYS_MS.length, A, []), null);
});

test("a cluster: home first, then each other node, at every backoff step", () => {
  const plans = [0, 1, 2, 3].map((i) => reconnectPlan(i, A, [A, B]));
  assert.deepEqual(plans.map((p) => p.url), [A, B, A, B]);
  const steps = CLUSTER_RECONNECT_DELAYS_MS;
  assert.deepEqual(plans.map((p) => p.delayMs), [steps[0], steps[0], steps[1], steps[1]]);
  assert.equal(reconnectPlan(2 * steps.length, B, [A, B]), null);
  // a dead node's heartbeat expires in seconds: every node is tried at least every second then
  const firstSeconds = steps.slice(0, 6);
  assert.ok(firstSeconds.every((ms) => ms <= 1000));
  assert.equal(reconnectPlan(1, B, [A, B]).url, A); // a page of B tries A second
});

const FakeSocket = fakeSocketClass();

test("redirect: a new socket to the room's node, then hello and the same join", () => {
  FakeSocket.made = [];
  const session = new ParleySession({ url: A, room: "r", name: "n", WebSocketImpl: FakeSocket });
  session.connect().catch(() => {});
  const first = FakeSocket.made[0];
  first.readyState = 1;
  first.fire("open");
  first.fire("message", { data: JSON.stringify({ type: "welcome", protocol: 1 }) });
  assert.equal(first.sent.at(-1).type, "join");
  first.fire("message", { data: JSON.stringify({ type: "redirect", room: "r", node: "b", url: B }) });
  assert.equal(FakeSocket.made.length, 2);
  const second = FakeSocket.made[1];
  assert.equal(second.url, B);
  assert.deepEqual(first.closed, { code: 1000, reason: "redirected" });
  first.fire("close", { code: 1000 }); // the old socket's close is ignored: no final close
  assert.equal(session.state, "connecting");
  second.readyState = 1;
  second.fire("open");
  assert.equal(second.sent[0].type, "hello");
  second.fire("message", { data: JSON.stringify({ type: "welcome", protocol: 1 }) });
  assert.deepEqual(second.sent[1].room, "r");
  assert.equal(session.homeUrl, A);
});

test("a loop of redirects stops after MAX_REDIRECTS", () => {
  FakeSocket.made = [];
  const session = new ParleySession({ url: A, room: "r", name: "n", WebSocketImpl: FakeSocket });
  session.connect().catch(() => {});
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const ws = FakeSocket.made.at(-1);
    ws.readyState = 1;
    ws.fire("open");
    ws.fire("message", { data: JSON.stringify({ type: "redirect", room: "r", node: "x", url: i % 2 ? A : B }) });
  }
  assert.equal(FakeSocket.made.length, MAX_REDIRECTS + 1);
  assert.equal(session.lastError.code, "redirect_loop");
  assert.equal(FakeSocket.made.at(-1).closed.reason, "redirect loop");
});

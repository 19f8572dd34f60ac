// Issue 18: the watch page's audience socket in a cluster. A node that does not hold the room
// answers `hello` with `redirect`: the socket goes to the room's node at once with the same
// hello; a loop of redirects stops; reconnecting tries our own server, then each node the
// last `welcome` named; the documents are read from the node that welcomed us.
import { test } from "node:test";
import assert from "node:assert/strict";

import { fakeSocketClass } from "./fake_socket.mjs";

import {
  AudienceSocket, MAX_AUDIENCE_REDIRECTS, audienceReconnectUrl, documentBase, homeAudienceUrl,
} from "../../../web/audience.js";

const A = "ws://10.0.0.11:8750/live/r/audience";
const B = "ws://10.0.0.12:8750/live/r/audience";

const FakeSocket = fakeSocketClass();

function socketAt(url, events = []) {
  FakeSocket.made = [];
  const hello = { viewer_id: "viewer-0001", lang: "en" };
  const socket = new AudienceSocket({
    room: "r",
    hello,
    url,
    WebSocketImpl: FakeSocket,
    onWelcome: (w) => events.push(["welcome", w.viewer_id]),
    onClose: (e) => events.push(["close", e.code]),
  });
  socket.open();
  return socket;
}

test("the page's own audience socket, and a node's documents base", () => {
  const loc = { protocol: "https:", host: "meet.example.org" };
  assert.equal(homeAudienceUrl("a b", loc), "wss://meet.example.org/live/a%20b/audience");
  assert.equal(documentBase("wss://meet.example.org/node/a/live/r/audience", "r"),
    "https://meet.example.org/node/a");
  assert.equal(documentBase(A, "r"), "http://10.0.0.11:8750");
});

test("redirect: a new socket to the room's node, the same hello, then welcome there", async () => {
  const events = [];
  const socket = socketAt(B, events);
  const first = FakeSocket.made[0];
  first.opened();
  assert.deepEqual(first.sent, [{ type: "hello", viewer_id: "viewer-0001", lang: "en" }]);
  first.receive({ type: "redirect", room: "r", node: "a", url: A });
  assert.deepEqual(first.closed, { code: 1000, reason: "redirected" });
  assert.equal(first.onclose, null); // its close is not reported: no reconnect loop starts
  const second = FakeSocket.made[1];
  assert.equal(second.url, A);
  second.opened();
  assert.deepEqual(second.sent, first.sent);
  second.receive({
    type: "welcome", viewer_id: "viewer-0001", role: "viewer", languages: ["en"], pivot: "en",
    cluster: { node: "a", nodes: [A, B] },
  });
  assert.deepEqual(events, [["welcome", "viewer-0001"]]);
  assert.equal(socket.welcomedUrl, A);
  assert.deepEqual(socket.nodes, [A, B]);
  const answer = socket.request({ type: "ask", text: "hi" });
  assert.equal(second.sent.at(-1).type, "ask");
  second.receive({ type: "accepted", ref: "ask", id: "q1" });
  assert.equal((await answer).id, "q1");
});

test("a loop of redirects stops, and the page's reconnect starts from home", () => {
  const events = [];
  const socket = socketAt(B, events);
  for (let i = 0; i < MAX_AUDIENCE_REDIRECTS; i++) {
    const ws = FakeSocket.made.at(-1);
    ws.opened();
    ws.receive({ type: "redirect", room: "r", node: "x", url: i % 2 ? B : A });
  }
  const last = FakeSocket.made.at(-1);
  last.opened();
  last.receive({ type: "redirect", room: "r", node: "x", url: A });
  assert.equal(FakeSocket.made.length, MAX_AUDIENCE_REDIRECTS + 1);
  assert.deepEqual(last.closed, { code: 4000, reason: "redirect loop" });
  last.onclose({ code: 4000 });
  assert.deepEqual(events, [["close", 4000]]);
  socket.reconnect();
  assert.equal(FakeSocket.made.at(-1).url, B);
});

test("when the room's node dies: home first, then every node welcome named, in turn", () => {
  assert.deepEqual([0, 1, 2].map((i) => audienceReconnectUrl(i, B, [])), [B, B, B]);
  assert.deepEqual([0, 1, 2, 3].map((i) => audienceReconnectUrl(i, B, [A, B])), [B, A, B, A]);
  const socket = socketAt(B);
  const first = FakeSocket.made[0];
  first.opened();
  first.receive({ type: "redirect", room: "r", node: "a", url: A });
  const onA = FakeSocket.made[1];
  onA.opened();
  onA.receive({ type: "welcome", viewer_id: "v", languages: ["en"], pivot: "en",
    cluster: { node: "a", nodes: [A, B] } });
  onA.onclose({ code: 1006 }); // node a died
  socket.reconnect();
  assert.equal(FakeSocket.made.at(-1).url, B); // home: it knows where the room went
  FakeSocket.made.at(-1).onclose({ code: 1006 });
  socket.reconnect();
  assert.equal(FakeSocket.made.at(-1).url, A);
});

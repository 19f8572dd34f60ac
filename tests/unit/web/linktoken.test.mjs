// Unit tests of web/linktoken.js (join-link tokens). Run: node --test tests/unit/web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { splitLinkToken, takeLinkToken, tokenKey, tokenRoom } from "../../../web/linktoken.js";

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const JWT = `${b64url({ alg: "HS256" })}.${b64url({ room: "from-claim", role: "host" })}.sig`;

test("a fragment token is taken; the other query parameters and fragment parts stay", () => {
  const got = splitLinkToken("https://h.example/?room=a&role=viewer#token=T1&x=1");
  assert.deepEqual(got, { token: "T1", room: "a", href: "https://h.example/?room=a&role=viewer#x=1" });
  assert.deepEqual(splitLinkToken("http://h/?room=a#token=T1"), { token: "T1", room: "a", href: "http://h/?room=a" });
  assert.equal(splitLinkToken("http://h/console.html?room=a&name=Ana&langs=es,fr#token=T").href, "http://h/console.html?room=a&name=Ana&langs=es,fr");
});

test("an old ?token= link works and is stripped too", () => {
  assert.deepEqual(splitLinkToken("http://h/?room=a&token=T2&role=viewer"), { token: "T2", room: "a", href: "http://h/?room=a&role=viewer" });
});

test("an address without a token is left exactly as it was", () => {
  for (const href of ["http://h/?room=a", "http://h/?room=a#lines", "http://h/?q=a+b%20c#x"]) {
    assert.deepEqual(splitLinkToken(href), { token: null, room: href.includes("room=") ? "a" : null, href });
  }
});

test("without a room parameter, the token's own room claim names its room", () => {
  assert.equal(tokenRoom(JWT), "from-claim");
  assert.equal(tokenRoom("not-a-jwt"), null);
  assert.equal(splitLinkToken(`http://h/#token=${JWT}`).room, "from-claim");
});

function fakeWindow(href) {
  const store = new Map();
  const win = {
    location: { href },
    history: { state: null, replaceState: (_s, _t, url) => { win.location.href = String(url); } },
    sessionStorage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, String(v)) },
  };
  return { win, store };
}

test("at load the token leaves the address and is kept for its room only", () => {
  const { win, store } = fakeWindow("http://h/?room=a#token=TA");
  const tokenFor = takeLinkToken(win);
  assert.equal(win.location.href, "http://h/?room=a");
  assert.deepEqual([...store], [[tokenKey("a"), "TA"]]);
  assert.equal(tokenFor("a"), "TA");
  assert.equal(tokenFor("b"), null);
  // a reload (no token in the address any more) still finds it for room a, not for b
  const again = takeLinkToken(win);
  assert.equal(again("a"), "TA");
  assert.equal(again("b"), null);
});

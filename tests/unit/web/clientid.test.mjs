// The browser's own client id (join.client_id): random, URL-safe, kept per tab.
import { test } from "node:test";
import assert from "node:assert/strict";

import { randomClientId, tabClientId } from "../../../web/protocol.js";

class MemoryStorage {
  constructor() { this.items = new Map(); }
  getItem(key) { return this.items.has(key) ? this.items.get(key) : null; }
  setItem(key, value) { this.items.set(key, String(value)); }
}

test("random client ids are URL-safe, long enough and different", () => {
  const ids = new Set(Array.from({ length: 200 }, () => randomClientId()));
  assert.equal(ids.size, 200);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
});

test("a tab keeps its id across reloads; another tab has its own; a bad stored id is replaced", () => {
  const tab = new MemoryStorage();
  const first = tabClientId(tab);
  assert.equal(tabClientId(tab), first);
  assert.notEqual(tabClientId(new MemoryStorage()), first);
  tab.setItem("parley.client_id", "<script>");
  assert.match(tabClientId(tab), /^[A-Za-z0-9_-]{22}$/);
});

// Unit tests of the interface-language helpers (web/i18n.js) and the plain-words messages
// (web/messages.js): node --test tests/unit/web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { UI_LANGUAGES, chooseLanguage, fill, setUiLanguage, t, uiLanguage } from "../../../web/i18n.js";
import { joinErrorKey, mediaErrorKey, noticeMessage } from "../../../web/messages.js";

test("the stored choice wins, then the browser's languages by base tag, else English", () => {
  assert.equal(chooseLanguage("ar", ["fr-FR"]), "ar");
  assert.equal(chooseLanguage(null, ["de-DE", "zh-CN", "fr"]), "zh");
  assert.equal(chooseLanguage("xx", ["pt-BR"]), "en");
  assert.equal(chooseLanguage(null, []), "en");
  assert.deepEqual([...UI_LANGUAGES].sort(), ["ar", "en", "es", "fr", "ru", "zh"]);
});

test("placeholders are filled; unknown ones stay", () => {
  assert.equal(fill("{name} joined", { name: "Ana" }), "Ana joined");
  assert.equal(fill("{a} and {b}", { a: 1 }), "1 and {b}");
});

test("t() speaks the chosen language and falls back to the key", async () => {
  assert.equal(uiLanguage(), "en");
  assert.equal(t("notify.joined", { name: "Ana" }), "Ana joined");
  await setUiLanguage("fr", { remember: false });
  assert.equal(t("controls.leave"), "Quitter");
  await setUiLanguage("ar", { remember: false });
  assert.equal(t("prejoin.join"), "انضمام");
  await setUiLanguage("en", { remember: false });
  assert.equal(t("no.such.key"), "no.such.key");
});

test("a join that never reached the server says so, with what to do", () => {
  const closed = new Error("connection closed (1006) before joining");
  assert.deepEqual(joinErrorKey(closed, 1006), { key: "join.unreachable" });
  assert.deepEqual(joinErrorKey(closed, 1001), { key: "join.unreachable" });
  assert.deepEqual(joinErrorKey(Object.assign(new Error("full"), { code: "room_full" })), { key: "join.roomFull" });
  assert.equal(joinErrorKey(Object.assign(new Error("odd"), { code: "something_new" })).key, "join.refused");
});

test("getUserMedia failures in words", () => {
  const err = (name) => Object.assign(new Error(name), { name });
  assert.equal(mediaErrorKey([]), null);
  assert.equal(mediaErrorKey([err("NotAllowedError")]), "media.blocked");
  assert.equal(mediaErrorKey([err("NotReadableError")]), "media.busy");
  assert.equal(mediaErrorKey([err("NotFoundError")], { audio: true, video: false }), "media.noMic");
});

test("the server's default notice is recognized, with its retention", () => {
  const base = "This meeting is transcribed and translated by machine while it runs: what you say is "
    + "shown to the others as captions, which may contain errors. ";
  const tail = " You can ask not to be transcribed.";
  assert.deepEqual(noticeMessage(`${base}Captions are not stored.${tail}`), { key: "notice.text" });
  assert.deepEqual(
    noticeMessage(`${base}This server stores final captions and room chat for up to 24 hours.${tail}`),
    { key: "notice.storesBoth", params: { hours: "24" } },
  );
  assert.deepEqual(noticeMessage("Our own words."), { raw: "Our own words." });
});

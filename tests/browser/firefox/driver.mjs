// Drives one headless Firefox ESR page for tests/browser/test_browser_firefox.py over WebDriver BiDi
// (puppeteer-core, no geckodriver, no browser download). Line protocol on stdin/stdout, one
// JSON object a line:
//   -> {"id": 1, "cmd": "goto", "url": "..."}            <- {"id": 1, "ok": true}
//   -> {"id": 2, "cmd": "eval", "js": "(arg) => ...", "arg": ...}  <- {"id": 2, "ok": true, "value": ...}
//   -> {"id": 3, "cmd": "close"}                          <- {"id": 3, "ok": true}  (then exits)
// Errors answer {"id", "ok": false, "error"}; page console lines go to stderr.
//
// Firefox's loopback needs (the test's namespace has `default dev lo src 127.0.0.1`): ICE on
// loopback and unobfuscated host addresses; fake camera and microphone, granted without a prompt.
import { createInterface } from "node:readline";
import puppeteer from "puppeteer-core";

export const FIREFOX_PREFS = Object.freeze({
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.autoplay.default": 0, // remote audio and the speech clip play without a gesture
});

const executablePath = process.env.FIREFOX || "/usr/bin/firefox-esr";
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath,
  headless: true,
  extraPrefsFirefox: FIREFOX_PREFS,
});
const page = await browser.newPage();
page.on("console", (m) => process.stderr.write(`[firefox] ${m.type()}: ${m.text()}\n`));
page.on("pageerror", (e) => process.stderr.write(`[firefox] pageerror: ${e.message}\n`));

const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const msg = JSON.parse(line);
  try {
    if (msg.cmd === "goto") {
      await page.goto(msg.url);
      reply({ id: msg.id, ok: true });
    } else if (msg.cmd === "eval") {
      // the function's source and its argument, as Playwright's page.evaluate takes them
      const value = await page.evaluate(`(${msg.js})(${JSON.stringify(msg.arg ?? null)})`);
      reply({ id: msg.id, ok: true, value: value === undefined ? null : value });
    } else if (msg.cmd === "close") {
      await browser.close();
      reply({ id: msg.id, ok: true });
      process.exit(0);
    } else {
      reply({ id: msg.id, ok: false, error: `unknown command ${msg.cmd}` });
    }
  } catch (err) {
    reply({ id: msg.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
}
await browser.close();

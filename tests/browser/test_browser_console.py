"""Acceptance (issue 6, points 2 and 4) in real headless Chromium (Debian's) through the real
server with live captions (real Whisper and Apertium), loopback only: an aiortc speaker (run
inside the test's network namespace) speaks English FLEURS audio; the interpreter console shows
its source line and the Spanish and French streams side by side with latency, confidence and
engine; the interpreter corrects the Spanish line with the keyboard and the console shows the
corrected line. The screenshot goes to the test's tmp dir (docs/screenshots/console.png with
PARLEY_UPDATE_DOCS=1)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.browser import (
    CHROMIUM,
    chromium_args,
    chromium_executable,
    silent_wav,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.paths import REPO, evalset_dir
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.browser, pytest.mark.models]

ROOM = "booth"
FIXED_ES = "Los estilos de Occidente podían llevar de 25 a 30 años de retraso."
sync_api = pytest.importorskip("playwright.sync_api")

SPANISH_FINAL_JS = """() => [...document.querySelectorAll('#lines-body tr.final')]
  .some((r) => r.querySelector('td.text[data-col="es"]').textContent.trim().length > 0
    && r.querySelector('td.meta').textContent.includes('confidence'))"""
CORRECTED_JS = """() => [...document.querySelectorAll('#lines-body td.text[data-col="es"]')]
  .some((td) => td.textContent.includes(%r) && td.textContent.includes('corrected'))"""


def test_console_shows_streams_and_corrects_a_line(host_netns: Namespace, tmp_path: Path) -> None:
    netns = host_netns
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    server = ServerProcess(
        tmp_path,
        '[media]\nice_host_addresses = ["127.0.0.1"]\n[captions]\nenabled = true\n',
        netns=netns,
    )
    speaker: subprocess.Popen[bytes] | None = None
    log: list[str] = []
    try:
        server.start()
        executable = chromium_executable(netns, tmp_path)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(executable),
                headless=True,
                args=chromium_args(silent_wav(tmp_path / "mic.wav")),
            )
            try:
                context = browser.new_context(
                    viewport={"width": 1280, "height": 720}, accept_downloads=True
                )
                page = context.new_page()
                page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
                page.goto(f"{server.http_url}/console.html?room={ROOM}&name=Ana&langs=es,fr")
                # the speaker first: it hosts the room (open mode), the console is an interpreter
                # several sentences (1 s apart): one FLEURS clip is one sentence, which is one
                # final since a pause inside a sentence no longer ends a caption (issue 12)
                clip = evalset_dir() / "longform" / "en_fleurs_concat.flac"
                ws = server.ws_url
                speaker = subprocess.Popen(
                    [*netns.prefix, sys.executable, "-m", "tests.support.speak"]
                    + [ws, ROOM, "Speaker", str(clip), "40"],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                )
                assert speaker.stdout is not None
                assert speaker.stdout.readline().startswith(b"joined")
                page.get_by_role("button", name="Open console").click()
                wait_until(page, "() => window.parley && window.parley.state === 'joined'")
                assert "role=interpreter room=booth" in server.log_text()
                wait_until(page, SPANISH_FINAL_JS, int(40_000 * TIME_SCALE))
                row = page.locator("#lines-body tr.final").first
                meta = row.locator("td.meta").inner_text()
                # confidence in words (high / medium / low), the number in the title
                assert re.search(r" s · (high|medium|low) confidence", meta), meta
                assert "logprob" in (row.locator("td.meta").get_attribute("title") or "")
                assert row.locator("td.speaker").inner_text() == "Speaker"
                assert row.locator('td.text[data-col="es"] .engine').inner_text() == "apertium"
                assert row.locator('td.text[data-col="fr"]').inner_text().strip()
                # keyboard only: focus the Spanish text, Enter edits, Enter saves
                cell = row.locator('td.text[data-col="es"]')
                cell.focus()
                page.keyboard.press("Enter")
                assert cell.get_attribute("contenteditable") == "true"
                page.keyboard.press("Control+A")
                page.keyboard.type(FIXED_ES)
                sent = time.monotonic()
                page.keyboard.press("Enter")
                wait_until(page, CORRECTED_JS % FIXED_ES, 5000)
                print(f"correction shown in the console after {time.monotonic() - sent:.2f} s")
                # the speaker filter hides other speakers' lines, the language filter a column
                page.get_by_label("FR", exact=True).uncheck()
                assert not page.locator('#lines-body td.text[data-col="fr"]').first.is_visible()
                page.get_by_label("FR", exact=True).check()
                wait_until(
                    page,
                    "() => document.querySelectorAll('#lines-body tr.final').length >= 2",
                    int(20_000 * TIME_SCALE),
                )
                assert "confidence" in row.locator("td.meta").inner_text()  # kept when corrected
                # the room glossary from the console's editor, and a WebVTT download that
                # carries the correction
                page.get_by_text("Glossary and exports").click()
                box = page.get_by_label("Room glossary", exact=False)
                box.fill("Occident = es: Occidente\nbroken line")
                page.get_by_role("button", name="Apply to the room").click()
                assert "Line 2" in page.locator("#glossary-errors").inner_text()
                assert page.evaluate("() => window.parley.glossary.length") == 0  # not sent
                box.fill("Sintra @en = es: Sintra; fr: Sintra\nParley = keep")
                page.get_by_role("button", name="Apply to the room").click()
                wait_until(page, "() => window.parley.glossary.length === 2")
                assert "set by you" in page.locator("#glossary-by").inner_text()
                with page.expect_download() as download:
                    page.get_by_role("button", name="WebVTT ES").click()
                vtt = Path(download.value.path()).read_text(encoding="utf-8")
                assert vtt.startswith("WEBVTT") and FIXED_ES in vtt, vtt[:500]
                assert download.value.suggested_filename == f"{ROOM}.es.vtt"
                shot = tmp_path / "console.png"
                page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
                if os.environ.get("PARLEY_UPDATE_DOCS") == "1":
                    shutil.copy(shot, REPO / "docs" / "screenshots" / "console.png")
                assert not [line for line in log if "pageerror" in line], log
            finally:
                browser.close()
    finally:
        if speaker is not None:
            speaker.kill()
            speaker.wait()
            if speaker.stdout is not None:
                speaker.stdout.close()
        server.stop()
        sys.stderr.write(f"--- server log ---\n{server.log_tail()}\n")

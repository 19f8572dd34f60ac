"""Issue 6, point 3 in real headless Chromium (Debian's), loopback only: a participant's page picks
the French channel in its settings; an aiortc interpreter is on air in it and an aiortc floor
speaker talks. The page shows the interpreter's on-air badge, receives the interpreter's audio
and none of the floor's (inbound-rtp packet counts per m-line); back on the floor it is the other
way round; with ducking it receives both and plays the floor at the server's duck volume."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    CHROMIUM,
    MID_STATS_JS,
    chromium_args,
    chromium_executable,
    open_page,
    remote_mids,
    silent_wav,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.paths import REPO, evalset_dir
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.browser]

ROOM = "channels"
sync_api = pytest.importorskip("playwright.sync_api")


def packets(page: Any, mid: str) -> int:
    stats = page.evaluate(MID_STATS_JS)
    return int(stats["mids"].get(mid, {}).get("packetsReceived", 0))


def received_during(page: Any, mids: list[str], seconds: float = 3.0) -> list[int]:
    before = [packets(page, mid) for mid in mids]
    page.wait_for_timeout(int(seconds * 1000))
    return [packets(page, mid) - b for mid, b in zip(mids, before, strict=True)]


def speaker(
    netns: Namespace, ws: str, name: str, clip: Path, *extra: str
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*netns.prefix, sys.executable, "-m", "tests.support.speak", ws, ROOM, name, str(clip)]
        + ["60", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("joined"), line
    return proc


def test_a_listener_picks_the_french_channel(host_netns: Namespace, tmp_path: Path) -> None:
    netns = host_netns
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    server = ServerProcess(tmp_path, '[media]\nice_host_addresses = ["127.0.0.1"]\n', netns=netns)
    procs: list[subprocess.Popen[bytes]] = []
    log: list[str] = []
    try:
        server.start()
        ws = server.ws_url
        executable = chromium_executable(netns, tmp_path)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(executable),
                headless=True,
                args=chromium_args(silent_wav(tmp_path / "mic.wav")),
            )
            try:
                page = open_page(browser, server.http_url, "Lena", ROOM, log)
                audio = evalset_dir() / "audio"
                procs.append(speaker(netns, ws, "Sam", audio / "en" / "fleurs-en-000.ogg"))
                sam = procs[-1]
                procs.append(
                    speaker(
                        netns,
                        ws,
                        "Marie",
                        audio / "fr" / "fleurs-fr-001.ogg",
                        "--lang",
                        "fr",
                        "--on-air",
                        "fr",
                    )
                )
                wait_until(page, "() => window.parley.participants.size === 2")
                ids = {
                    p["name"]: p["participant_id"]
                    for p in page.evaluate(
                        "() => [...window.parley.participants.values()]"
                        ".map((p) => ({name: p.name, participant_id: p.participant_id}))"
                    )
                }
                wait_until(
                    page,
                    f"() => window.parley.channels.some((c) => c.channel === 'fr' "
                    f"&& c.on_air === '{ids['Marie']}')",
                )
                tile = page.locator(f'#tiles .tile[data-participant-id="{ids["Marie"]}"]')
                assert "On air · FR" in tile.inner_text()
                wait_until(
                    page,
                    "() => window.parley.remoteTracks.size >= 2",
                )
                sam_mid = remote_mids(page, ids["Sam"])["audio"]
                marie_mid = remote_mids(page, ids["Marie"])["audio"]
                # on the floor: Sam, not Marie
                from_sam, from_marie = received_during(page, [sam_mid, marie_mid])
                print(f"floor: sam {from_sam} packets, marie {from_marie}")
                assert from_sam >= 60 and from_marie <= 10, (from_sam, from_marie)

                # the listener picks French in the settings panel
                page.get_by_role("button", name="Settings", exact=True).click()
                page.get_by_label("Hear", exact=True).select_option("fr")
                wait_until(page, "() => window.parley.listening.channel === 'fr'")
                page.wait_for_timeout(500 * TIME_SCALE)
                from_sam, from_marie = received_during(page, [sam_mid, marie_mid])
                print(f"french channel: sam {from_sam} packets, marie {from_marie}")
                assert from_marie >= 60 and from_sam <= 10, (from_sam, from_marie)

                # ducking: both arrive, the floor plays at the duck volume
                page.get_by_label("Keep the original quietly under the interpreter").check()
                wait_until(page, "() => window.parley.listening.duck === true")
                page.wait_for_timeout(500 * TIME_SCALE)
                from_sam, from_marie = received_during(page, [sam_mid, marie_mid], 2.0)
                assert from_sam >= 40 and from_marie >= 40, (from_sam, from_marie)
                volumes = page.evaluate(
                    "(ids) => ids.map((id) => document.querySelector("
                    '`#tiles .tile[data-participant-id="${id}"] video`).volume)',
                    [ids["Sam"], ids["Marie"]],
                )
                assert volumes == [pytest.approx(0.2), 1], volumes
                shot = tmp_path / "channels.png"
                page.screenshot(path=str(shot))
                if os.environ.get("PARLEY_UPDATE_DOCS") == "1":
                    shutil.copy(shot, REPO / "docs" / "screenshots" / "channels.png")
                # an interpreter's page goes on air into German from the booth controls
                jean = open_page(browser, server.http_url, "Jean", ROOM, log, "&role=interpreter")
                assert jean.evaluate("() => window.parley.myRole") == "interpreter"
                jean.get_by_role("button", name="Settings", exact=True).click()
                jean.get_by_label("Interpret into", exact=True).select_option("de")
                jean.get_by_role("button", name="Go on air", exact=True).click()
                jean.locator("#on-air-badge").wait_for(state="visible")
                assert jean.locator("#on-air-badge").inner_text() == "ON AIR · DE"
                jean_id = jean.evaluate("() => window.parley.participantId")
                jean_tile = page.locator(f'#tiles .tile[data-participant-id="{jean_id}"]')
                wait_until(
                    page, f"() => window.parley.channels.some((c) => c.on_air === '{jean_id}')"
                )
                assert "On air · DE" in jean_tile.inner_text()
                # French is Marie's: Jean may only ask to take it over
                jean.get_by_role("button", name="Go off air (German)", exact=True).click()
                jean.get_by_label("Interpret into", exact=True).select_option("fr")
                jean.get_by_role("button", name="Ask to take over", exact=True).click()
                wait_until(
                    page,
                    f"() => window.parley.channels.some((c) => c.requested_by === '{jean_id}')",
                )
                assert "On air" not in jean_tile.inner_text()
                jean.context.close()
                # the floor speaker leaves: nothing breaks, Marie still comes through
                sam.kill()
                sam.wait()
                wait_until(page, "() => window.parley.participants.size === 1", 20_000)
                (from_marie,) = received_during(page, [marie_mid], 2.0)
                assert from_marie >= 40, from_marie
                assert not [line for line in log if "pageerror" in line], log
            finally:
                browser.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        server.stop()
        sys.stderr.write(f"--- server log ---\n{server.log_tail()}\n")

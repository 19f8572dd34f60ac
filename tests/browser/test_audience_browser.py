"""Issue 16 in real headless Chromium (Debian's), loopback only, real engines: the audience
speaks back. The host joins the room page and gets the moderation link; three viewers on
/watch.html write questions in English, Spanish and French (the English and French ones ask
the same); the moderation page, in Spanish, shows them as two groups, one of two; after
approval each viewer reads both questions in their own language; each viewer's votes count once.
A poll written in English is answered from the Spanish and French pages; its live result shows
both votes. The host asks from the room page's chat panel and votes there (participants
use the same socket and documents). The screenshot goes to the test's tmp dir
(docs/screenshots/audience.png with PARLEY_UPDATE_DOCS=1).

On stage (acceptance 3): with the room broadcast live (real ffmpeg HLS), the moderator invites a
viewer who asked a question; the watch page asks for camera and microphone (Chromium's fake
devices: the test pattern and a speech WAV) and joins the room as a participant over real
WebRTC; the host's room page decodes their video and their audio carries energy, and the
broadcast's floor audio (the HLS segments on disk, the host being muted) carries their voice
within seconds while its picture is their camera (the name the worker draws under it reads
theirs); dismissed, the page has left the room, the broadcast shows the host again, and hls.js
plays the stream again."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.support.broadcast_watch import PLAYER_JS
from tests.support.browser import (
    MIN_NEW_FRAMES,
    browser_server_config,
    launched_chromium,
    make_speech_wav,
    mid_counters,
    open_page,
    silent_wav,
    wait_for_mid_media,
    wait_for_remote_tracks,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.paths import REPO, evalset_dir
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.models]

ROOM = "townhall"
QUESTIONS = {
    "en": "Will the presentation be recorded?",
    "es": "¿Dónde están las diapositivas?",
    "fr": "Est-ce que la présentation sera enregistrée ?",
}
TIMEOUT_MS = 60_000
FROM_ROOM = "Can the people in the room ask too?"


def new_page(browser: Any, url: str, log: list[str], name: str) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"[{name}] pageerror: {e}"))
    page.goto(url)
    return page


def test_questions_moderated_translated_voted_and_a_poll(
    host_netns: Namespace, tmp_path: Path
) -> None:
    log: list[str] = []
    with ServerProcess(tmp_path, browser_server_config(captions=True), netns=host_netns) as server:
        base = server.http_url
        with launched_chromium(host_netns, tmp_path, silent_wav(tmp_path / "mic.wav")) as browser:
            try:
                host = open_page(browser, base, "Hana", ROOM, log)
                wait_until(host, "() => !document.getElementById('moderate-link').hidden")
                link = host.evaluate("() => document.getElementById('moderate-link').href")
                assert "/moderate.html?room=townhall#key=" in link
                path, key = link.split("#", 1)
                moderator = new_page(browser, f"{path}&lang=es#{key}", log, "mod-es")
                wait_until(moderator, "() => window.moderation.role === 'moderator'")
                viewers = {
                    lang: new_page(browser, f"{base}/watch.html?room={ROOM}&lang={lang}", log, lang)
                    for lang in QUESTIONS
                }
                for lang, page in viewers.items():
                    wait_until(page, "() => window.audience.connected")
                    page.get_by_label("Your question or comment").fill(QUESTIONS[lang])
                    page.get_by_role("button", name="Send").click()
                    wait_until(page, "() => window.audience.lastAnswer?.type === 'accepted'")
                # the moderator's queue, in Spanish: two groups, the same question once (×2)
                wait_until(
                    moderator,
                    """() => { const g = window.moderation.groups;
                      return g.length === 2 && g.some((x) => x.count === 2)
                        && g.every((x) => x.items.every((i) => i.translated)); }""",
                    TIMEOUT_MS,
                )
                groups = moderator.evaluate("() => window.moderation.groups")
                print(json.dumps(groups, ensure_ascii=False, indent=1))
                pair = next(g for g in groups if g["count"] == 2)
                assert "presentación" in pair["text"].lower(), pair
                shown = moderator.locator(f'li.group[data-id="{pair["id"]}"]')
                assert "×2" in shown.inner_text()
                shown.get_by_text("Originals").click()  # the originals, one click away
                assert shown.get_by_text(QUESTIONS["fr"]).is_visible()
                for group in groups:
                    moderator.locator(f'li.group[data-id="{group["id"]}"] button.approve').click()
                # every viewer reads both approved questions in their own language
                for lang, page in viewers.items():
                    wait_until(
                        page,
                        f"""() => window.audience.questions.length === 2
                          && window.audience.questions.every((q) => q.lang === {json.dumps(lang)})
                          && document.querySelectorAll('#questions li').length === 2""",
                        TIMEOUT_MS,
                    )
                texts = {
                    lang: page.evaluate("() => window.audience.questions.map((q) => q.text)")
                    for lang, page in viewers.items()
                }
                print(json.dumps(texts, ensure_ascii=False, indent=1))
                assert QUESTIONS["es"] in texts["es"] and QUESTIONS["en"] in texts["en"]
                assert any("présentation" in t for t in texts["fr"])
                assert any("slides" in t for t in texts["en"])
                # each viewer votes for both, by question (the list re-renders and may reorder
                # as votes arrive); a voted question's button is disabled (the server refuses a
                # second vote: tests/acceptance/test_audience.py)
                for page in viewers.values():
                    ids = page.evaluate("() => window.audience.questions.map((q) => q.id)")
                    for qid in ids:
                        page.locator(f'#questions li[data-id="{qid}"] button.vote').click()
                for page in viewers.values():
                    wait_until(
                        page,
                        """() => window.audience.questions.every((q) => q.votes === 3)
                          && [...document.querySelectorAll('#questions button.vote')]
                               .every((b) => b.disabled)""",
                        TIMEOUT_MS,
                    )
                # a poll written in English, answered from the Spanish and French pages
                poller = new_page(browser, f"{path}&lang=en#{key}", log, "mod-en")
                wait_until(poller, "() => window.moderation.role === 'moderator'")
                poller.get_by_label("Poll question", exact=True).fill("Did you like the talk?")
                poller.get_by_label("Options (one a line)").fill("Yes\nNo")
                poller.get_by_role("button", name="Start poll").click()
                for lang, option in (("es", 0), ("fr", 1)):
                    page = viewers[lang]
                    wait_until(
                        page,
                        f"""() => window.audience.polls.length === 1
                          && window.audience.polls[0].lang === {json.dumps(lang)}""",
                        TIMEOUT_MS,
                    )
                    page.locator("#polls button.poll-option").nth(option).click()
                wait_until(
                    poller,
                    "() => window.moderation.polls[0]?.total === 2",
                    TIMEOUT_MS,
                )
                for page in viewers.values():
                    wait_until(page, "() => window.audience.polls[0]?.total === 2", TIMEOUT_MS)
                polls = {
                    lang: page.evaluate("() => window.audience.polls[0]")
                    for lang, page in viewers.items()
                }
                print(json.dumps(polls, ensure_ascii=False))
                assert [o["votes"] for o in polls["en"]["options"]] == [1, 1]
                assert polls["es"]["question"] != "Did you like the talk?"
                # a participant asks from the room page (the chat panel's audience questions),
                # and votes there
                host.locator("button[data-panel='panel-chat']").click()
                wait_until(host, "() => window.audience.connected")
                host.get_by_label("Your question or comment").fill(FROM_ROOM)
                host.locator("#ask-send").click()
                wait_until(host, "() => window.audience.lastAnswer?.type === 'accepted'")
                assert host.locator("#ask-status").inner_text() == "Sent: a moderator will see it."
                wait_until(
                    moderator,
                    "() => window.moderation.groups.some((g) => g.status === 'pending')",
                    TIMEOUT_MS,
                )
                pending = moderator.evaluate(
                    "() => window.moderation.groups.find((g) => g.status === 'pending').id"
                )
                moderator.locator(f'li.group[data-id="{pending}"] button.approve').click()
                wait_until(
                    host,
                    f"""() => window.audience.questions.some(
                        (q) => q.text === {json.dumps(FROM_ROOM)})
                      && document.querySelectorAll('#questions li').length === 3""",
                    TIMEOUT_MS,
                )
                host.locator("#questions li", has_text=FROM_ROOM).locator("button.vote").click()
                wait_until(
                    host,
                    f"""() => window.audience.questions.some(
                      (q) => q.text === {json.dumps(FROM_ROOM)} && q.votes === 1)""",
                    TIMEOUT_MS,
                )
                shot = tmp_path / "audience.png"
                viewers["es"].screenshot(path=str(shot), full_page=True)
                moderator.screenshot(path=str(tmp_path / "moderate.png"), full_page=True)
                if os.environ.get("PARLEY_UPDATE_DOCS") == "1":
                    shutil.copy(shot, REPO / "docs" / "screenshots" / "audience.png")
                    shutil.copy(
                        tmp_path / "moderate.png", REPO / "docs" / "screenshots" / "moderate.png"
                    )
            finally:
                print("\n".join(log[-60:]))


STAGE_ROOM = "stage"
#: the floor's RMS (float samples) above which the broadcast carries a voice; the muted host's
#: floor is digital silence (below 1e-4)
VOICE_RMS = 0.001


def broadcast_config(live_dir: Path) -> str:
    return browser_server_config(captions=False) + (
        f'[broadcast]\ndir = "{live_dir}"\n'
        # light encodes: the machine is shared
        "renditions = [{ width = 320, height = 180, video_kbps = 300 }]\n"
        "fps = 10\nsegment_s = 1.0\n"
    )


def floor_segments(live_dir: Path) -> list[tuple[str, float]]:
    """(segment, RMS of its audio) for the floor rendition's segments in its playlist now."""
    room = live_dir / STAGE_ROOM
    master = (room / "master.m3u8").read_text()
    uri = re.search(r'TYPE=AUDIO[^\n]*URI="([^"]+)"', master)
    assert uri is not None, master
    playlist = room / uri.group(1)
    out = []
    for line in playlist.read_text().splitlines():
        if line.endswith(".ts"):
            try:
                with av.open(str(playlist.parent / line)) as container:
                    samples = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
            except FileNotFoundError:  # ffmpeg deleted it since (delete_segments)
                continue
            pcm = np.concatenate(samples).astype(np.float64) if samples else np.zeros(1)
            out.append((line, float(np.sqrt((pcm**2).mean()))))
    return out


def wait_file(folder: Path, pattern: str, text: str, timeout_s: float = 30.0) -> str:
    """Until the one file matching ``pattern`` under ``folder`` reads ``text``."""
    deadline = time.monotonic() + timeout_s
    while True:
        files = list(folder.glob(pattern))
        content = files[0].read_text().strip() if len(files) == 1 else None
        if content == text:
            return content
        assert time.monotonic() < deadline, (files, content)
        time.sleep(0.25)


def wait_stream_playing(page: Any, timeout_ms: int = 60_000) -> dict[str, Any]:
    """Until hls.js plays: the position and the decoded frames advance."""
    wait_until(page, "() => Boolean(window.watch.hls) && !window.watch.onStage", timeout_ms)
    first: dict[str, Any] = page.evaluate(PLAYER_JS)
    wait_until(
        page,
        f"""() => {{ const v = document.getElementById('watch-video');
              return v.currentTime > {first["currentTime"]} + 1.0
                && v.getVideoPlaybackQuality().totalVideoFrames > {first["frames"]} + 5; }}""",
        timeout_ms,
    )
    state: dict[str, Any] = page.evaluate(PLAYER_JS)
    return state


def test_viewer_on_stage_is_heard_and_seen_then_back_on_the_stream(
    host_netns: Namespace, tmp_path: Path
) -> None:
    log: list[str] = []
    live_dir = tmp_path / "live"
    speech = evalset_dir() / "audio" / "en" / "fleurs-en-000.ogg"
    mic = make_speech_wav(tmp_path / "speech.wav", speech, lead_s=0.0, take_s=8.0, tail_s=0.0)
    # the broadcast worker's work folder (there: the name it draws under the program's picture)
    work = tmp_path / "tmp"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(work)}
    with ServerProcess(tmp_path, broadcast_config(live_dir), netns=host_netns, env=env) as server:
        base = server.http_url
        with launched_chromium(host_netns, tmp_path, mic) as browser:
            try:
                # the host: camera on, microphone muted (so the floor is silent until the
                # viewer speaks), broadcasting; the moderator console from the host's link
                host = open_page(browser, base, "Hana", STAGE_ROOM, log)
                host.evaluate("() => window.parley.setMuted('audio', true)")
                host.evaluate("() => window.parley.setBroadcast(true)")
                wait_until(host, "() => !document.getElementById('moderate-link').hidden")
                link = host.evaluate("() => document.getElementById('moderate-link').href")
                path, key = link.split("#", 1)
                moderator = new_page(browser, f"{path}&lang=en#{key}", log, "mod")
                wait_until(moderator, "() => window.moderation.role === 'moderator'")
                viewer = new_page(
                    browser, f"{base}/watch.html?room={STAGE_ROOM}&lang=en", log, "viewer"
                )
                wait_stream_playing(viewer, TIMEOUT_MS)
                wait_until(viewer, "() => window.audience.connected")
                before = floor_segments(live_dir)[-3:]
                print(f"floor before the stage: {before}")
                assert max(rms for _, rms in before) < VOICE_RMS, before

                viewer.get_by_label("Your question or comment").fill("Can I say it myself?")
                viewer.get_by_role("button", name="Send").click()
                wait_until(viewer, "() => window.audience.lastAnswer?.type === 'accepted'")
                wait_until(moderator, "() => window.moderation.groups.length === 1", TIMEOUT_MS)
                moderator.locator("li.group .actions button.invite").click()
                wait_until(viewer, "() => window.stage.state === 'invited'")
                assert viewer.get_by_role("alertdialog").is_visible()
                viewer.get_by_label("Your name").fill("Vera")
                viewer.get_by_role("button", name="Join on stage").click()
                wait_until(viewer, "() => window.stage.state === 'on_stage'", TIMEOUT_MS)
                on_stage_at = time.monotonic()
                assert viewer.evaluate("() => window.watch.onStage && !window.watch.hls")
                pid = viewer.evaluate("() => window.parley.participantId")
                wait_until(
                    moderator,
                    "() => window.moderation.stage[0]?.state === 'on_stage'",
                    TIMEOUT_MS,
                )
                # the room sees and hears them (the host's page, real WebRTC)
                mids = wait_for_remote_tracks(host, pid)
                stats = wait_for_mid_media(host, mids)
                frames = mid_counters(stats, mids["video"])[0]
                energy = mid_counters(stats, mids["audio"])[1]
                print(f"the host receives Vera: {frames} frames, audio energy {energy:.4f}")
                assert frames >= MIN_NEW_FRAMES and energy > 0, stats
                names = host.evaluate(
                    "() => [...window.parley.participants.values()].map((p) => p.name)"
                )
                assert "Vera" in names, names
                # the viewer's page receives the room (the host's camera)
                wait_until(viewer, "() => window.parley.remoteTracks.size >= 1")
                viewer.screenshot(path=str(tmp_path / "on-stage.png"), full_page=True)
                # ...and so does the broadcast: the floor carries their voice within seconds
                deadline = time.monotonic() + 60
                while True:
                    heard = [s for s in floor_segments(live_dir)[-2:] if s[1] > VOICE_RMS]
                    if heard:
                        break
                    assert time.monotonic() < deadline, floor_segments(live_dir)
                    time.sleep(0.5)
                delay_s = time.monotonic() - on_stage_at
                print(f"in the broadcast's floor {delay_s:.1f} s after joining: {heard}")
                # ...and its picture: the active speaker's camera, their name drawn under it
                shown = wait_file(work, "parley-broadcast-*/speaker.txt", "Vera")
                print(f"the program shows {shown!r} {time.monotonic() - on_stage_at:.1f} s after")

                # dismissed: the page leaves the room and plays the stream again
                moderator.locator("#stage-list button.dismiss-stage").click()
                wait_until(viewer, "() => window.stage.state === 'watching'", TIMEOUT_MS)
                wait_until(viewer, "() => window.parley.state === 'closed'", TIMEOUT_MS)
                # (the room socket closes 4004, or 1000 when the page's own leave, on the
                # audience socket's stage_ended, got there first)
                assert viewer.evaluate("() => window.parley.closeCode") in (1000, 4004)
                wait_until(
                    host,
                    f"() => !window.parley.participants.has({json.dumps(pid)})",
                    TIMEOUT_MS,
                )
                # the broadcast's picture is back on the room's host
                wait_file(work, "parley-broadcast-*/speaker.txt", "Hana")
                back = wait_stream_playing(viewer, TIMEOUT_MS)
                print(f"back on the stream: {back['status']}")
                assert viewer.evaluate("() => window.stage.ended") in ("dismissed", "stage_ended")
                assert viewer.locator("#stage").is_hidden()
                viewer.screenshot(path=str(tmp_path / "after-stage.png"), full_page=True)
                assert not [line for line in log if "pageerror" in line], log
            finally:
                print("\n".join(log[-60:]))

"""Issue 13 bugs in real headless Chromium through the real server (captions off, loopback).

- test_also_language_agrees_in_bar_transcript_and_chat (bug 1): a reader of Spanish, also
  English, bilingual: the caption bar, the transcript panel and chat show the same language
  (Spanish) for an English speaker, and bilingual shows the original + Spanish. The captions and
  the chat message are fed into the page's own handlers (the server here has no speech worker;
  the choice of language is the page's).
- test_french_chat_is_translated_for_an_english_reader (bug 2): with captions on (real Whisper,
  real Apertium), Fay writes French in the chat panel; Eli, who reads English, sees it in
  English, marked machine-translated, and no engine name anywhere on his page.
- test_ice_failure_stops_with_turn_message (bug 3, acceptance 3): Bob's page runs in a network
  namespace of its own, joined to the server's by a TCP-only relay (tests/support/tcp_relay.py),
  so his WebSocket works and no UDP reaches the SFU, and the server has no TURN. His page stops
  with a message naming TURN, does not rejoin, and Alice sees him join and leave at most once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    browser_server_config,
    chromium_args,
    chromium_executable,
    launched_chromium,
    open_page,
    silent_wav,
)
from tests.support.netns import Namespace
from tests.support.server import ServerProcess
from tests.support.tcp_relay import TcpRelay
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api")

#: how long Bob's page has to give up (Chromium fails ICE at once when nothing answers) and
#: how long we then watch for a rejoin that must not come
GIVE_UP_S = 45.0 * TIME_SCALE
QUIET_S = 8.0 * TIME_SCALE


@pytest.fixture(scope="module")
def server(netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = browser_server_config(captions=False)
    with ServerProcess(tmp_path_factory.mktemp("server"), config, netns=netns) as instance:
        yield instance


@pytest.fixture(scope="module")
def mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return silent_wav(tmp_path_factory.mktemp("mic") / "silence.wav", seconds=2.0)


@pytest.fixture(scope="module")
def browser(mic: Path, netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with launched_chromium(netns, tmp_path_factory.mktemp("bin"), mic) as b:
        yield b


CAPTION = {
    "type": "caption",
    "caption_id": "c1",
    "lang": "en",
    "final": True,
    "start_s": 0.0,
    "end_s": 1.5,
    "stable_chars": 0,
    "text": "Good morning everyone",
    "translations": {"es": "Buenos días a todos"},
}
CHAT = {
    "type": "chat",
    "message_id": "m1",
    "lang": "en",
    "text": "Good morning everyone",
    "translations": {"es": "Buenos días a todos"},
    "untranslated": {},
    "from_name": "Ann",
    "sent_at": 0,
}

#: what each of the three places shows: [lang, text] of each visible line, in order
THREE_PLACES_JS = """() => {
  const line = (r) => [...r.querySelectorAll('.caption-line')].map((l) => l.textContent);
  const rows = [...document.querySelectorAll('#caption-blocks .caption-row')]
    .map((r) => [r.lang, line(r).join(' ')]);
  const transcript = [...document.querySelectorAll('#transcript-list li p')]
    .map((p) => [p.lang, p.textContent]);
  const chat = [...document.querySelectorAll('#chat-log .chat-text')]
    .map((p) => [p.lang, p.textContent]);
  return {bar: rows, transcript, chat};
}"""


def test_also_language_agrees_in_bar_transcript_and_chat(
    browser: Any, server: ServerProcess
) -> None:
    log: list[str] = []
    page = open_page(browser, server.http_url, "Rea", "also-in", log)
    try:
        # the caption settings as the panel's controls set them (their change handlers)
        page.evaluate(
            """() => {
              const set = (id, prop, value) => {
                const el = document.getElementById(id);
                el[prop] = value;
                el.dispatchEvent(new Event('change'));
              };
              set('cc-lang', 'value', 'es');
              set('cc-lang2', 'value', 'en');
              set('cc-bilingual', 'checked', true);
            }"""
        )
        me = page.evaluate("window.parley.participantId")
        caption = {**CAPTION, "participant_id": "speaker1"}
        chat = {**CHAT, "from": "speaker1"}
        page.evaluate(
            """([caption, chat]) => {
              window.parleyView.captions.consent();
              window.parleyView.onCaption({caption, receivedMs: Date.now()});
              window.parleyView.chat.add(chat);
            }""",
            [caption, chat],
        )
        shown = page.evaluate(THREE_PLACES_JS)
        print(json.dumps(shown, ensure_ascii=False), me)
        spanish, english = ["es", "Buenos días a todos"], ["en", "Good morning everyone"]
        assert shown["bar"] == [english, spanish], shown  # bilingual: original, then main
        assert shown["transcript"] == [spanish, english], shown
        assert shown["chat"] == [spanish], shown
    finally:
        page.context.close()
        print("\n".join(log))


#: counts participant_joined / participant_left for a name at this page's socket
COUNT_JS = """(name) => {
  window.seen = {joined: 0, left: 0, ids: []};
  window.parley.ws.addEventListener('message', (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === 'participant_joined' && m.participant.name === name) {
      window.seen.joined += 1;
      window.seen.ids.push(m.participant.participant_id);
    } else if (m.type === 'participant_left' && window.seen.ids.includes(m.participant_id)) {
      window.seen.left += 1;
    }
  });
}"""


def test_ice_failure_stops_with_turn_message(
    browser: Any, server: ServerProcess, netns: Namespace, mic: Path, tmp_path: Path
) -> None:
    log: list[str] = []
    alice = open_page(browser, server.http_url, "Alice", "no-udp", log)
    alice.evaluate(COUNT_JS, "Bob")
    island = Namespace()  # Bob's: loopback only, and a relay for TCP
    relay = TcpRelay(
        server.port, listen_pid=island.pid, target_pid=netns.pid if netns.isolated else None
    )
    try:
        exe = chromium_executable(island, tmp_path)  # type: ignore[arg-type]
        bob_browser = browser.browser_type.launch(
            executable_path=str(exe), headless=True, args=chromium_args(mic)
        )
        try:
            bob = open_page(bob_browser, server.http_url, "Bob", "no-udp", log)
            started = time.monotonic()
            while bob.evaluate("window.parley.state") != "closed":
                if time.monotonic() - started > GIVE_UP_S:
                    break
                bob.wait_for_timeout(200)
            gave_up_s = time.monotonic() - started
            print(f"Bob's page: {bob.evaluate('window.parley.state')} after {gave_up_s:.1f} s")
            bob.wait_for_timeout(QUIET_S * 1000)  # no rejoin follows
            status = bob.locator("#status").inner_text()
            print("Bob's page says:", status)
            alert = bob.get_by_role("alert").inner_text()  # by the Join button
            seen = alice.evaluate("window.seen")
            print("Alice saw Bob:", seen)
            assert seen["joined"] <= 1 and seen["left"] <= 1, seen
            assert seen["joined"] == 1  # he did get in (then left, once)
            assert bob.evaluate("window.parley.state") == "closed"
            assert "TURN" in status, status
            assert alert == status, alert
        finally:
            bob_browser.close()
    finally:
        relay.close()
        island.close()
        alice.context.close()
        print("\n".join(log[-60:]))


@pytest.fixture
def captioning_server(netns: Namespace, tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path, browser_server_config(captions=True), netns=netns) as instance:
        yield instance


def join_speaking(browser: Any, base_url: str, room: str, name: str, speak: str, read: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 760}).new_page()
    page.goto(f"{base_url}/?room={room}")
    form = page.locator("#join-form")
    form.get_by_label("Your name", exact=True).fill(name)
    form.get_by_label("I speak", exact=True).select_option(speak)
    form.get_by_label("Captions in", exact=True).select_option(read)
    form.get_by_role("button", name="Join", exact=True).click()
    deadline = time.monotonic() + 10 * TIME_SCALE
    while page.evaluate("() => window.parley?.state") != "joined":
        assert time.monotonic() < deadline, f"{name} did not join"
        page.wait_for_timeout(100)
    return page


def test_french_chat_is_translated_for_an_english_reader(
    browser: Any, captioning_server: ServerProcess
) -> None:
    url = captioning_server.http_url
    fay = join_speaking(browser, url, "chat-fr", "Fay", "fr", "fr")
    eli = join_speaking(browser, url, "chat-fr", "Eli", "en", "en")
    try:
        fay.locator("#chat-button").click()
        fay.locator("#chat-input").fill("Bonjour à tous, merci beaucoup.")
        fay.locator("#chat-send").click()
        eli.locator("#chat-button").click()
        message = eli.locator("#chat-log .chat-message").first
        message.wait_for(timeout=int(10_000 * TIME_SCALE))
        text = message.locator(".chat-text")
        shown = {"lang": text.get_attribute("lang"), "text": text.inner_text()}
        note = message.locator(".chat-note").inner_text()
        print("Eli sees:", shown, note)
        assert shown["lang"] == "en" and "thank" in shown["text"].lower(), (shown, note)
        assert note.startswith("Machine-translated"), note
        page_text = eli.locator("body").inner_text().lower()
        for engine in ("whisper", "apertium", "argos"):
            assert engine not in page_text, engine
    finally:
        fay.context.close()
        eli.context.close()

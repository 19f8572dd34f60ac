"""Real Chromium on a token-mode server: the link `parley token` prints lets a page in (as the
token's name), the page without a token is told why, and the room link the page then shows no
longer carries the token. Links carry the token in the fragment (`#token=`): it never reaches the
server (the server here records every request target it gets), the page takes it off its address
at load and keeps it for its room only. Server and browser fixtures as in
tests/browser/test_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.browser import (
    STATE_TIMEOUT_MS,
    snapshot,
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.server import ServerProcess, parley_bin

pytestmark = pytest.mark.browser
SECRET = "5ec2e7" * 8
ROOM = "token-room"


@pytest.fixture(scope="module")
def token_server(
    netns: Namespace, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    """A token-mode server subprocess (`parley serve` that also records every request target it
    receives); yields its URL, its configuration file and the file of request targets."""
    tmp = tmp_path_factory.mktemp("token-server")
    (tmp / "secret").write_text(SECRET + "\n")
    config_text = (
        '[media]\nice_host_addresses = ["127.0.0.1"]\n\n[captions]\nenabled = false\n\n'
        f'[auth]\nsecret_file = "{tmp / "secret"}"\n'
    )
    requests = tmp / "requests.log"
    requests.touch()
    server = ServerProcess(
        tmp,
        config_text,
        netns=netns,
        host=None,
        command=[sys.executable, "-m", "tests.support.recording_serve", "serve"],
        env={**os.environ, "PARLEY_TEST_REQUEST_LOG": str(requests)},
    )
    assert server.config_path is not None
    with server:
        yield server.http_url, server.config_path, requests


def token_link(
    config: Path, base_url: str, role: str, name: str | None = None, room: str = ROOM
) -> str:
    args = [parley_bin(), "token", "--config", str(config), "--room", room, "--role", role]
    args += ["--base-url", base_url] + (["--name", name] if name else [])
    return subprocess.run(
        args, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def open_link(browser: Any, link: str, name: str, log: list[str]) -> Any:
    page = browser.new_context().new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.goto(link)
    # the page's modules finish after the load event (web/i18n.js awaits its catalog)
    wait_until(page, f"() => document.getElementById('room-input').value === {ROOM!r}")
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    return page


def test_token_links_let_pages_in_and_only_them(
    browser: Any, token_server: tuple[str, Path, Path]
) -> None:
    url, config, _ = token_server
    log: list[str] = []
    # no token: the page says why it cannot join
    intruder = open_link(browser, f"{url}/?room={ROOM}", "Intruder", log)
    error = intruder.locator("#join-error")
    # in plain words (issue 13): the link is what a user knows, not the token inside it
    error.filter(has_text="invitation link").wait_for(timeout=STATE_TIMEOUT_MS)
    assert "needs an invitation link" in error.inner_text()

    host = open_link(browser, token_link(config, url, "host", name="Ada"), "typed-name", log)
    wait_until(host, "() => Boolean(window.parley) && window.parley.state === 'joined'")
    guest = open_link(browser, token_link(config, url, "participant"), "Bob", log)
    wait_until(guest, "() => Boolean(window.parley) && window.parley.state === 'joined'")
    try:
        host_id = snapshot(host)["participantId"]
        # the token's name is the one the others see
        item = guest.locator(f'#participant-list li[data-participant-id="{host_id}"]')
        item.wait_for(timeout=STATE_TIMEOUT_MS)
        assert "Ada" in item.inner_text() and "typed-name" not in item.inner_text()
        # the address (the link people copy) keeps the room, drops the token
        for page in (host, guest):
            assert f"room={ROOM}" in page.url and "token=" not in page.url
        # a reload still works: the tab kept its token
        guest.reload()
        guest.get_by_label("Your name", exact=True).fill("Bob")
        guest.get_by_role("button", name="Join", exact=True).click()
        wait_until(guest, "() => Boolean(window.parley) && window.parley.state === 'joined'")
        assert json.dumps(snapshot(guest)["participantId"]) != "null"
    finally:
        for page in (intruder, host, guest):
            page.context.close()
        sys.stderr.write("\n".join(log[-50:]) + "\n")


JOINED_JS = "() => Boolean(window.parley) && window.parley.state === 'joined'"


def fragment_token(link: str) -> str:
    parts = urlsplit(link)
    assert "token" not in parse_qs(parts.query), link  # `parley token` puts it in the fragment
    return parse_qs(parts.fragment)["token"][0]


def test_link_tokens_stay_out_of_addresses_requests_and_other_rooms(
    browser: Any, token_server: tuple[str, Path, Path]
) -> None:
    url, config, requests = token_server
    log: list[str] = []
    link = token_link(config, url, "participant")
    token = fragment_token(link)
    pages: list[Any] = []
    try:
        # a `#token=` link: gone from the address as soon as the page has loaded, before joining
        page = open_link(browser, link, "Bob", log)
        pages.append(page)
        assert page.evaluate("location.href") == f"{url}/?room={ROOM}"
        wait_until(page, JOINED_JS)
        assert page.evaluate("location.href") == f"{url}/?room={ROOM}"
        # the server got the page, its scripts and the socket, and never the token
        seen = requests.read_text().splitlines()
        assert f"/?room={ROOM}" in seen and "/linktoken.js" in seen and "/ws" in seen, seen
        assert not [target for target in seen if token in target or "token=" in target]
        # the same tab, another room: room a's token is not offered there
        page.goto(f"{url}/?room=other-room")
        page.get_by_label("Your name", exact=True).fill("Bob")
        page.get_by_role("button", name="Join", exact=True).click()
        page.locator("#join-error").filter(has_text="invitation link").wait_for(
            timeout=STATE_TIMEOUT_MS
        )
        assert "needs an invitation link" in page.locator("#join-error").inner_text()
        assert page.evaluate("window.parley.token") is None
        # ... while a reload of the first room (no token in its address) still joins
        page.goto(f"{url}/?room={ROOM}")
        page.get_by_label("Your name", exact=True).fill("Bob")
        page.get_by_role("button", name="Join", exact=True).click()
        wait_until(page, JOINED_JS)

        # an old `?token=` link still joins, and is stripped at load too
        old_token = fragment_token(token_link(config, url, "participant"))
        old = open_link(browser, f"{url}/?room={ROOM}&token={old_token}&x=1", "Cy", log)
        pages.append(old)
        assert old.evaluate("location.href") == f"{url}/?room={ROOM}&x=1"
        wait_until(old, JOINED_JS)

        # the interpreter console strips it at load too, and keeps the other parameters
        booth = fragment_token(token_link(config, url, "interpreter"))
        console = browser.new_context().new_page()
        pages.append(console)
        console.on("console", lambda m: log.append(f"[console] {m.type}: {m.text}"))
        console.goto(f"{url}/console.html?room={ROOM}&name=Ana&langs=es#token={booth}&x=1")
        assert console.evaluate("location.href") == (
            f"{url}/console.html?room={ROOM}&name=Ana&langs=es#x=1"
        )
        console.get_by_role("button", name="Open console", exact=True).click()
        wait_until(console, JOINED_JS)
        assert console.evaluate("window.parley.myRole") == "interpreter"
    finally:
        for p in pages:
            p.context.close()
        sys.stderr.write("\n".join(log[-50:]) + "\n")

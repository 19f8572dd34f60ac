"""Real Chromium on a token-mode server: the link `parley token` prints lets a page in (as the
token's name), the page without a token is told why, and the room link the page then shows no
longer carries the token. Server and browser fixtures as in tests/test_browser.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import (
    STATE_TIMEOUT_MS,
    Netns,
    free_port,
    http_ok,
    parley_bin,
    snapshot,
    wait_until,
)
from tests.test_browser import SERVER_START_TIMEOUT_S, browser, speech_wav

pytestmark = pytest.mark.browser
__all__ = ["browser", "speech_wav"]  # fixtures used here (netns: conftest)
SECRET = "5ec2e7" * 8
ROOM = "token-room"


@pytest.fixture(scope="module")
def token_server(
    netns: Netns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A token-mode server subprocess; yields its URL and its configuration file."""
    tmp = tmp_path_factory.mktemp("token-server")
    (tmp / "secret").write_text(SECRET + "\n")
    config = tmp / "parley.toml"
    config.write_text(
        '[media]\nice_host_addresses = ["127.0.0.1"]\n\n[captions]\nenabled = false\n\n'
        f'[auth]\nsecret_file = "{tmp / "secret"}"\n'
    )
    port = free_port()
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*netns.prefix, parley_bin(), "serve", "--port", str(port), "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not http_ok(netns, url + "/readyz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server not ready on {url}:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url, config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sys.stderr.write(f"--- server log ---\n{log_path.read_text()[-3000:]}\n")


def token_link(config: Path, base_url: str, role: str, name: str | None = None) -> str:
    args = [parley_bin(), "token", "--config", str(config), "--room", ROOM, "--role", role]
    args += ["--base-url", base_url] + (["--name", name] if name else [])
    return subprocess.run(
        args, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def open_link(browser: Any, link: str, name: str, log: list[str]) -> Any:
    page = browser.new_context().new_page()
    page.on("console", lambda m: log.append(f"[{name}] {m.type}: {m.text}"))
    page.goto(link)
    assert page.get_by_label("Room", exact=True).input_value() == ROOM
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_role("button", name="Join", exact=True).click()
    return page


def test_token_links_let_pages_in_and_only_them(
    browser: Any, token_server: tuple[str, Path]
) -> None:
    url, config = token_server
    log: list[str] = []
    # no token: the page says why it cannot join
    intruder = open_link(browser, f"{url}/?room={ROOM}", "Intruder", log)
    error = intruder.locator("#join-error")
    error.filter(has_text="token").wait_for(timeout=STATE_TIMEOUT_MS)
    assert "needs a room token" in error.inner_text()

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

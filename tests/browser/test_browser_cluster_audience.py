"""Acceptance (issue 18, the audience in a cluster) in real headless Chromium: a private LAN of
network namespaces holds a real ``redis-server`` and two ``parley serve --cluster`` nodes. The
room lives on node A (its host joined there); a viewer's watch page is loaded from node B. Its
audience socket reaches B, which answers ``redirect``: the page follows it to A by itself, asks a
question there, which the host's moderator socket on A sees; approved, the page reads it from
A's documents (B's page may: its ``connect-src`` names the live nodes). Then A is SIGKILLed: the
host rejoins through B, which takes the room over with the board A kept in Redis; the page
reconnects by itself to its own node, now the room's, and shows the approved question again."""

from __future__ import annotations

import json
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from websockets.sync.client import ClientConnection, connect

from tests.support.browser import launched_chromium, silent_wav, wait_until
from tests.support.cluster import start_cluster
from tests.support.lan import Lan
from tests.support.netns import Namespace
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.browser]

ROOM = "town"
PORT = 8750
QUESTION = "Will the slides be shared after the talk?"


def node_id(node: ServerProcess) -> str:
    return f"{node.host}-{node.port}"


def host_joins(
    stack: ExitStack, ns: Namespace, node: ServerProcess
) -> tuple[ClientConnection, dict[str, Any]]:
    """The room's host over a plain socket from ``ns`` (no media; closed with ``stack``): the
    socket and its answer to ``join`` (``joined`` or ``redirect``)."""
    with ns.entered():
        ws = stack.enter_context(connect(node.ws_url, origin=node.http_url))  # type: ignore[arg-type]
    ws.send(json.dumps({"type": "hello", "protocol": 1}))
    ws.send(json.dumps({"type": "join", "room": ROOM, "name": "Hana", "publish": []}))
    while True:
        reply = json.loads(ws.recv(timeout=10))
        if reply["type"] in {"joined", "redirect", "error"}:
            return ws, reply


def moderator_on(
    stack: ExitStack, ns: Namespace, node: ServerProcess, key: str
) -> ClientConnection:
    url = f"ws://{node.host}:{PORT}/live/{ROOM}/audience"
    with ns.entered():
        ws = stack.enter_context(connect(url, origin=node.http_url))  # type: ignore[arg-type]
    ws.send(json.dumps({"type": "hello", "viewer_id": "moderator-1", "lang": "en",
                        "moderator_key": key}))  # fmt: skip
    welcome = json.loads(ws.recv(timeout=10))
    assert welcome["type"] == "welcome" and welcome["role"] == "moderator", welcome
    return ws


def kept_board(ns: Namespace, url: str) -> str:
    """The room's audience snapshot in Redis ("" while there is none)."""
    with ns.entered():
        store = Redis.from_url(url, decode_responses=True)
        try:
            return str(store.get(f"parley:snapshot:audience:{ROOM}") or "")
        finally:
            store.close()


def queue_with(ws: ClientConnection, text: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s * TIME_SCALE
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == "queue" and any(
            item["original"] == text for g in message["groups"] for item in g["items"]
        ):
            return dict(message)


def test_a_watch_page_of_another_node_asks_on_the_rooms_node_and_follows_it_over(
    tmp_path: Path,
) -> None:
    lan = Lan("10.18.9")
    parts: list[Any] = []
    sockets = ExitStack()
    log: list[str] = []
    try:
        redis, (a, b) = start_cluster(
            lan,
            tmp_path,
            2,
            port=PORT,
            sections="[captions]\nenabled = false\n",
            cluster="heartbeat_interval_s = 0.5\nnode_ttl_s = 1.5\n",
            parts=parts,
        )
        browser_ns, _ = lan.host(20)
        redis_url = redis.url
        for node in (a, b):
            deadline = time.monotonic() + 10 * TIME_SCALE
            while node.metrics().get("parley_cluster_nodes") != 2:
                assert time.monotonic() < deadline, node.log_tail()
                time.sleep(0.1)  # another process's state: nothing to wait on
        host, joined = host_joins(sockets, browser_ns, a)
        assert joined["type"] == "joined" and joined["cluster"]["node"] == node_id(a), joined
        key = joined["moderate_url"].split("#key=", 1)[1]
        moderator = moderator_on(sockets, browser_ns, a, key)
        with launched_chromium(browser_ns, tmp_path, silent_wav(tmp_path / "mic.wav")) as browser:
            context = browser.new_context()
            page = context.new_page()
            page.on("console", lambda m: log.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
            page.goto(f"{b.http_url}/watch.html?room={ROOM}&lang=en")
            # B's page followed the redirect to the room's node, A
            wait_until(page, "() => window.audience && window.audience.connected")
            assert page.evaluate("window.audience.node") == node_id(a), log[-10:]
            assert page.evaluate("window.audience.socketUrl") == (
                f"ws://{a.host}:{PORT}/live/{ROOM}/audience"
            )
            page.get_by_label("Your question or comment").fill(QUESTION)
            page.get_by_role("button", name="Send").click()
            wait_until(page, "() => window.audience.lastAnswer?.type === 'accepted'")
            queue = queue_with(moderator, QUESTION)
            item_id = queue["groups"][0]["items"][0]["id"]
            moderator.send(json.dumps({"type": "moderate", "id": item_id, "action": "approve"}))
            shown = f"""() => window.audience.questions.some((q) => q.text === {QUESTION!r})
              && document.querySelector('#questions li')?.textContent.includes('shared')"""
            wait_until(page, shown)  # read from A's documents
            deadline = time.monotonic() + 5 * TIME_SCALE
            while '"status":"approved"' not in kept_board(browser_ns, redis_url):
                assert time.monotonic() < deadline, "the approved board never reached Redis"
                time.sleep(0.1)  # written with a heartbeat of another process

            # A dies: the host rejoins through B, which takes the room over with the board; the
            # page reconnects to its own node, B, and reads the question there
            host.close()
            a.stop(sig=signal.SIGKILL)
            killed = time.monotonic()
            while True:
                host, reply = host_joins(sockets, browser_ns, b)
                if reply["type"] == "joined":
                    break
                assert time.monotonic() - killed < 10 * TIME_SCALE, reply
                host.close()
                time.sleep(0.1)  # the dead node's heartbeat is still in Redis: ask again
            wait_until(page, f"() => window.audience.node === {json.dumps(node_id(b))}", 20_000)
            back_s = time.monotonic() - killed
            wait_until(page, shown)
            print(f"\nthe watch page was back on the room's new node {back_s:.1f} s after the kill")
            assert not [line for line in log if "pageerror" in line], log
            context.close()
    finally:
        sockets.close()
        for part in reversed(parts):
            part.stop()
        lan.close()

"""Acceptance (issue 18, points 1 and 2) with real Chromium, real WebRTC, real captions: a
private LAN of network namespaces (tests/support/lan.py) holds a real ``redis-server``, two
``parley serve`` nodes on their own addresses, and Chromium. Alice's page is served by node A,
Bob's by node B; both end up in one room (Bob's join is redirected to the room's node), see and
hear each other and read each other's captions. Then the node holding the room is SIGKILLed:
both pages rejoin by themselves on the other node within 10 s (the room is placed anew once the
dead node's heartbeat expired), and media and captions flow again."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    CHROMIUM,
    chromium_args,
    chromium_executable,
    open_page,
    wait_for_media,
    wait_until,
)
from tests.support.lan import Lan
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.browser, pytest.mark.media, pytest.mark.models]
sync_api = pytest.importorskip("playwright.sync_api")

ROOM = "cluster-room"
PORT = 8750
#: the acceptance bound: both pages back in the room on the other node
REJOIN_BOUND_S = 10.0

#: every caption the page's session gets, with the time it arrived
CAPTURE_CAPTIONS_JS = """() => {
  window._caps = [];
  window.parley.addEventListener('caption', (e) => window._caps.push({
    pid: e.detail.caption.participant_id, final: e.detail.caption.final,
    text: e.detail.caption.text, at: Date.now()}));
}"""
#: the page is joined and sees the participant called `name`
SEES_JS = """(name) => window.parley.state === 'joined'
  && [...window.parley.participants.values()].some((p) => p.name === name)"""
#: the id of the participant called `name`
ID_OF_JS = """(name) => [...window.parley.participants.values()]
  .find((p) => p.name === name).participant_id"""


def node_config(data: Path, address: str, redis_url: str) -> str:
    return (
        f'[server]\ndata_dir = "{data}"\n[auth]\nmode = "open"\n'
        f'[media]\nice_host_addresses = ["{address}"]\n'
        # tiny.en: real captions at a quarter of base's CPU (two nodes and Chromium share the
        # machine; what is tested is that captions follow the room, not their quality)
        '[captions]\nenabled = true\nworkers = 1\ncpu_threads = 1\nmodel = "tiny.en"\n'
        'translation_engines = ["apertium"]\n'
        f'[cluster]\nredis_url = "{redis_url}"\nheartbeat_interval_s = 1.0\nnode_ttl_s = 3.0\n'
    )


def descendants(pid: int) -> list[int]:
    """The processes under ``pid`` (its speech worker...), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def captions_of(page: Any, pid: str, since_ms: float = 0) -> list[dict[str, Any]]:
    caps: list[dict[str, Any]] = page.evaluate("window._caps")
    return [c for c in caps if c["pid"] == pid and c["at"] >= since_ms and c["text"].strip()]


def wait_for_captions(page: Any, pid: str, since_ms: float, timeout_s: float) -> float:
    """Seconds until the page got a caption of ``pid`` arriving after ``since_ms``."""
    began = time.monotonic()
    deadline = began + timeout_s * TIME_SCALE
    while not captions_of(page, pid, since_ms):
        if time.monotonic() > deadline:
            raise AssertionError(f"no caption of {pid}: {page.evaluate('window._caps')[-5:]}")
        page.wait_for_timeout(200)
    return time.monotonic() - began


@contextlib.contextmanager
def cluster(tmp: Path) -> Iterator[tuple[Lan, dict[str, ServerProcess], Any]]:
    lan = Lan()
    started: list[Any] = []
    try:
        redis_ns, redis_ip = lan.host(10)
        redis = RedisServer(tmp, host=redis_ip, port=6379, netns=redis_ns)
        redis.start()
        started.append(redis)
        nodes: dict[str, ServerProcess] = {}
        for name, octet in (("a", 11), ("b", 12)):
            ns, ip = lan.host(octet)
            workdir = tmp / name
            workdir.mkdir()
            node = ServerProcess(
                workdir, node_config(workdir, ip, redis.url), host=ip, port=PORT, netns=ns
            )
            nodes[name] = node
            started.append(node)
        for node in nodes.values():  # both load their models meanwhile
            node.start(wait=False)
        for node in nodes.values():
            node.wait_ready(180)
        yield lan, nodes, redis
    finally:
        for part in reversed(started):
            if isinstance(part, ServerProcess):
                leftovers = descendants(part.pid) if part.alive() else []
                part.stop()
                for pid in leftovers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            else:
                part.stop()
        lan.close()


def test_two_pages_on_two_nodes_meet_and_survive_the_rooms_node_dying(
    speech_wav: Path, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not installed (make system-deps)")
    log: list[str] = []
    with cluster(tmp_path) as (lan, nodes, _redis):
        a, b = nodes["a"], nodes["b"]
        # each node knows the other before the pages come (one heartbeat read)
        for node in (a, b):
            deadline = time.monotonic() + 10 * TIME_SCALE
            while node.metrics().get("parley_cluster_nodes") != 2:
                assert time.monotonic() < deadline, node.log_tail()
                time.sleep(0.2)
        browser_ns, _ = lan.host(20)
        executable = chromium_executable(browser_ns, tmp_path)
        # the nodes serve plain http on LAN addresses, which are no secure context (no
        # getUserMedia): a deployment has TLS (config/cluster/), the test names its origins
        insecure = ",".join(f"http://{n.host}:{PORT}" for n in (a, b))
        args = [
            *chromium_args(speech_wav),
            f"--unsafely-treat-insecure-origin-as-secure={insecure}",
        ]
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(executable), headless=True, args=args)
            try:
                alice = open_page(browser, a.http_url, "Alice", ROOM, log)
                alice.evaluate(CAPTURE_CAPTIONS_JS)
                bob = open_page(browser, b.http_url, "Bob", ROOM, log)
                bob.evaluate(CAPTURE_CAPTIONS_JS)
                # Bob's page came from node B and was sent on to the room's node, A
                assert bob.evaluate("window.parley.url") == a.ws_url
                assert bob.evaluate("window.parley.node") == alice.evaluate("window.parley.node")
                assert "join redirected" in b.log_text()
                wait_until(alice, f"() => ({SEES_JS})('Bob')")
                wait_until(bob, f"() => ({SEES_JS})('Alice')")
                for page in (alice, bob):
                    stats = wait_for_media(page)
                    assert stats.get("video", {}).get("framesDecoded", 0) > 0, (stats, log[-20:])
                    assert stats.get("audio", {}).get("totalAudioEnergy", 0) > 0, (stats, log[-20:])
                bob_id = alice.evaluate(f"({ID_OF_JS})('Bob')")
                alice_id = bob.evaluate(f"({ID_OF_JS})('Alice')")
                first_a = wait_for_captions(alice, bob_id, 0, 60)
                first_b = wait_for_captions(bob, alice_id, 0, 60)
                print(f"\ncaptions read across: Alice after {first_a:.1f} s, Bob +{first_b:.1f} s")

                # the node holding the room dies
                holder = a if alice.evaluate("window.parley.url") == a.ws_url else b
                survivor = b if holder is a else a
                leftovers = descendants(holder.pid)
                killed_ms = alice.evaluate("Date.now()")
                killed = time.monotonic()
                holder.stop(sig=signal.SIGKILL)
                for pid in leftovers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                back = {}
                deadline = killed + REJOIN_BOUND_S * TIME_SCALE
                while len(back) < 2:
                    for name, page, other in (("Alice", alice, "Bob"), ("Bob", bob, "Alice")):
                        if name not in back and page.evaluate(
                            f"() => ({SEES_JS})({other!r}) && window.parley.url === "
                            f"{survivor.ws_url!r} && window.parley.reconnects >= 1"
                        ):
                            back[name] = time.monotonic() - killed
                    assert time.monotonic() < deadline, (
                        f"back: {back}; {[line for line in log if 'error' in line][-10:]}\n"
                        f"{survivor.log_tail(30)}"
                    )
                    alice.wait_for_timeout(100)
                print(f"back in the room on the other node after {back} s")
                assert max(back.values()) <= REJOIN_BOUND_S * TIME_SCALE
                metrics = survivor.metrics()
                assert metrics["parley_cluster_takeovers_total"] >= 1
                assert metrics["parley_cluster_nodes"] == 1
                # media and captions flow again, on the new node
                for page in (alice, bob):
                    stats = wait_for_media(page)
                    assert stats.get("video", {}).get("framesDecoded", 0) > 0, (stats, log[-20:])
                    assert stats.get("audio", {}).get("totalAudioEnergy", 0) > 0, (stats, log[-20:])
                media_s = time.monotonic() - killed
                bob_id = alice.evaluate(f"({ID_OF_JS})('Bob')")
                alice_id = bob.evaluate(f"({ID_OF_JS})('Alice')")
                wait_for_captions(alice, bob_id, killed_ms, 60)
                wait_for_captions(bob, alice_id, killed_ms, 60)
                captions_s = time.monotonic() - killed
                print(f"media again {media_s:.1f} s, captions again {captions_s:.1f} s after")
                assert not [line for line in log if "pageerror" in line], log
            finally:
                browser.close()

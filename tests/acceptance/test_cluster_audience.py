"""Acceptance (issue 18, the audience in a cluster): Redis and two ``parley serve --cluster``
nodes on a namespace LAN (tests/support/cluster.py). A room lives on node A; a viewer's audience
socket that reaches node B is answered ``redirect`` to A's audience socket (a browser's WebSocket
cannot follow an HTTP 307), the viewer follows it and asks a question there, and the room's host
(its moderator link, opened through B as well) sees it in the moderation queue. When A is
SIGKILLed, the room is taken over by B with the host's rejoin, and B restores the board A kept in
Redis (the question, approved; the moderator key): the viewer reconnects through its own node B,
cannot ask the same again, asks another, and the moderator of A's link sees both."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.support.cluster import start_cluster
from tests.support.lan import Lan
from tests.support.raw import RawClient
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE, wait_until

PORT = 8750
INTERVAL_S, TTL_S = 0.5, 1.5
ROOM = "town"


def node_id(node: ServerProcess) -> str:
    return f"{node.host}-{node.port}"


def sees_both(node: ServerProcess) -> bool:
    return node.metrics().get("parley_cluster_nodes") == 2


def audience_url(node: ServerProcess) -> str:
    return f"ws://{node.host}:{node.port}/live/{ROOM}/audience"


async def open_audience(
    url: str, page: ServerProcess, **hello: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """A socket opened by a page of ``page`` (its ``Origin``), ``hello`` sent: the socket and
    the server's first answer (``welcome`` or ``redirect``)."""
    ws = await connect(url, origin=Origin(page.http_url))
    await ws.send(json.dumps({"type": "hello", "lang": "en", **hello}))
    return ws, json.loads(await ws.recv())


async def open_following(
    page: ServerProcess, **hello: Any
) -> tuple[ClientConnection, dict[str, Any], list[dict[str, Any]]]:
    """What the watch page does: its own node's audience socket, then each ``redirect``
    (at most 4): the socket that welcomed it, the welcome, the redirects followed."""
    url, redirects = audience_url(page), list[dict[str, Any]]()
    for _ in range(5):
        ws, first = await open_audience(url, page, **hello)
        if first["type"] != "redirect":
            return ws, first, redirects
        redirects.append(first)
        try:
            await ws.recv()
            raise AssertionError("a redirected audience socket stayed open")
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4005, closed
        url = first["url"]
    raise AssertionError(f"redirected in a loop: {redirects}")


async def call(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    while True:
        answer: dict[str, Any] = json.loads(await ws.recv())
        if answer["type"] != "queue":
            return answer


async def queue_until(ws: ClientConnection, predicate: Any, timeout_s: float = 10) -> Any:
    """The moderator's pushed queue once ``predicate`` holds."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s * TIME_SCALE):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "queue":
                    last = message
                    if predicate(message):
                        return message
    except TimeoutError:
        raise AssertionError(json.dumps(last, indent=1)) from None


def texts(queue: dict[str, Any]) -> list[str]:
    return [item["original"] for group in queue["groups"] for item in group["items"]]


async def join(url: str, page: ServerProcess, name: str) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(url, origin=page.http_url)
    await client.send({"type": "join", "room": ROOM, "name": name, "publish": []})
    while True:
        reply = await client.recv()
        if reply["type"] in {"joined", "redirect", "error"}:
            return client, reply


def questions_document(node: ServerProcess) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    assert node.netns is not None
    url = f"{node.http_url}/live/{ROOM}/questions.en.json"
    with node.netns.entered(), opener.open(url, timeout=5) as reply:
        return dict(json.loads(reply.read()))


def csp_of(node: ServerProcess, path: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    assert node.netns is not None
    with node.netns.entered(), opener.open(f"{node.http_url}{path}", timeout=5) as reply:
        return str(reply.headers["Content-Security-Policy"])


async def test_an_audience_socket_on_the_wrong_node_is_sent_to_the_rooms_node(
    tmp_path: Path,
) -> None:
    lan = Lan("10.18.7")
    parts: list[Any] = []
    sockets: list[Any] = []
    stores: list[Redis] = []
    try:
        redis, (a, b) = start_cluster(
            lan,
            tmp_path,
            2,
            port=PORT,
            sections="[captions]\nenabled = false\n",
            cluster=f"heartbeat_interval_s = {INTERVAL_S}\nnode_ttl_s = {TTL_S}\n",
            parts=parts,
        )
        client_ns, _ = lan.host(30)
        with client_ns.entered():  # its socket is made at its first command, there
            store = Redis.from_url(redis.url, decode_responses=True)
            stores.append(store)
        for node in (a, b):
            assert await wait_until(partial(sees_both, node), 10)
        # B's watch page may read A's documents and open A's sockets (connect-src)
        assert f"http://{a.host}:{PORT}" in csp_of(b, "/watch.html")
        assert f"ws://{a.host}:{PORT}" in csp_of(b, "/watch.html")
        with client_ns.entered():  # this thread's sockets are the client machine's
            # the host's join reaches A: the room lives there
            host, joined = await join(a.ws_url, a, "Hana")
            sockets.append(host)
            assert joined["type"] == "joined" and joined["cluster"]["node"] == node_id(a), joined
            key = joined["moderate_url"].split("#key=", 1)[1]

            # the host's moderation page was loaded from B: sent on to A, moderates there
            viewer_id = secrets.token_urlsafe(12)
            moderator, welcome, redirects = await open_following(
                b, viewer_id=secrets.token_urlsafe(12), moderator_key=key
            )
            sockets.append(moderator)
            assert [r["node"] for r in redirects] == [node_id(a)]
            assert welcome["role"] == "moderator", welcome

            # a viewer's watch page of B: its audience socket reaches B, is answered redirect
            viewer, welcome, redirects = await open_following(b, viewer_id=viewer_id)
            sockets.append(viewer)
            assert redirects == [
                {"type": "redirect", "room": ROOM, "node": node_id(a), "url": audience_url(a)}
            ]
            assert welcome["type"] == "welcome" and welcome["viewer_id"] == viewer_id
            assert welcome["cluster"] == {
                "node": node_id(a),
                "nodes": [audience_url(a), audience_url(b)],
            }
            question = "Will the slides be shared after the talk?"
            answer = await call(viewer, {"type": "ask", "text": question})
            assert answer["type"] == "accepted", answer
            queue = await queue_until(moderator, lambda q: question in texts(q))
            item_id = queue["groups"][0]["items"][0]["id"]
            assert (
                await call(moderator, {"type": "moderate", "id": item_id, "action": "approve"})
            )["type"] == "accepted"
            # a room that is live on no node: no redirect, 4404 as on a single node
            nowhere = f"ws://{b.host}:{PORT}/live/nowhere/audience"
            try:
                await open_audience(nowhere, b, viewer_id=viewer_id)
                raise AssertionError("an audience socket of no room was answered")
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4404
            assert "Will the slides" not in a.log_text() + b.log_text()  # no question text

            # A keeps the board in Redis (with a heartbeat, at most a second after a change)
            snapshot_key = f"parley:snapshot:audience:{ROOM}"
            kept_value = None
            for _ in range(int(5 * TIME_SCALE / 0.1)):
                kept_value = await store.get(snapshot_key)
                if kept_value and '"status":"approved"' in kept_value:
                    break
                await asyncio.sleep(0.1)
            assert kept_value and '"status":"approved"' in kept_value, kept_value

            # A dies: the viewer's socket drops; the host rejoins through B, which takes the
            # room over once A's heartbeat expired, with the board; the viewer and the moderator
            # (A's moderator key) reconnect home (B): no redirect
            await host.close()
            a.stop(sig=signal.SIGKILL)
            killed = time.monotonic()
            try:
                async with asyncio.timeout(5 * TIME_SCALE):
                    await viewer.recv()
            except ConnectionClosed:
                pass
            while True:
                host, reply = await join(b.ws_url, b, "Hana")
                sockets.append(host)
                if reply["type"] == "joined":
                    break
                assert time.monotonic() - killed < (2 * TTL_S + 5) * TIME_SCALE, reply
                await host.close()
                await asyncio.sleep(0.1)
            new_key = reply["moderate_url"].split("#key=", 1)[1]  # B's own; A's link still works
            viewer, welcome, redirects = await open_following(b, viewer_id=viewer_id)
            sockets.append(viewer)
            assert redirects == [] and welcome["cluster"]["node"] == node_id(b), welcome
            moderator, welcome, _ = await open_following(
                b, viewer_id=secrets.token_urlsafe(12), moderator_key=key
            )
            sockets.append(moderator)
            assert welcome["role"] == "moderator", welcome
            other, welcome, _ = await open_following(b, viewer_id=viewer_id, moderator_key=new_key)
            sockets.append(other)
            assert welcome["role"] == "moderator", welcome
            again = "And the recording?"
            assert (await call(viewer, {"type": "ask", "text": again}))["type"] == "accepted"
            queue = await queue_until(moderator, lambda q: again in texts(q))
            # the question asked on A is there, approved; asking it again is a duplicate
            (kept,) = [g for g in queue["groups"] if g["text"] == question]
            assert kept["status"] == "approved" and kept["items"][0]["id"] == item_id
            repeat = await call(viewer, {"type": "ask", "text": question})
            assert repeat["type"] == "error" and repeat["code"] == "duplicate", repeat
            document = await asyncio.to_thread(questions_document, b)
            assert [q["text"] for q in document["questions"]] == [question]
            assert "audience restored" in b.log_text() and question not in b.log_text()
    finally:
        for socket in sockets:
            await socket.close()
        for store in stores:
            await store.aclose()
        for part in reversed(parts):
            part.stop()
        lan.close()

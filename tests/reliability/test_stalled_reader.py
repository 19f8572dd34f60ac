"""Faults: a client that stops reading is cut off without hurting the others.

Four participants in a room against a real ``parley serve`` process in a private network
namespace; one of them stops reading its socket (its transport is paused: the kernel's buffers
fill, then the server's outbox). The three others chat at a steady rate under the per-connection
limit, so every chat message is server → client traffic for all four. The stuck one, and only
it, must be closed (``outbox_full``) and leave the room within 10 s; the others must receive
every message, in the server's order, within 2 s; the server must hold nothing for it (its
socket closed, RSS flat; the traffic is ~0.7 MB, so the RSS check only catches gross growth:
the outbox's bound is what keeps it small).

Found on the way: the server cut the right client but kept it in the room until the websocket
keepalive gave up (~40 s): websockets' close handshake first waits for the send buffer to drain,
which a client that does not read never lets happen. The server now drops the socket when the
handshake has not finished within ``CLOSE_HANDSHAKE_TIMEOUT_S`` (the client sees 1006).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.netns import Namespace
from tests.support.origin import ws_origin
from tests.support.raw import RawClient
from tests.support.reliability import (
    open_fds,
    report,
    rss_bytes,
    served_config,
    unhandled_in_log,
)
from tests.support.server import HOST, ServerProcess
from tests.support.waits import TIME_SCALE, wait_until

pytestmark = pytest.mark.reliability

OUTBOX_MAX_MESSAGES = 64
SENDERS = 3
#: per sender; under the default 20 messages/s per connection
CHATS_PER_S = 12.0
CHAT_CHARS = 1800
#: small receive buffer of the stuck client: the kernel's share of its backlog stays small
STUCK_RCVBUF_BYTES = 4096
TRAFFIC_S = 10.0


async def join(client: RawClient, room: str, name: str) -> str:
    await client.send({"type": "join", "room": room, "name": name})
    return str((await client.recv("joined", 15))["participant_id"])


async def open_client(server: ServerProcess, *, rcvbuf_bytes: int | None = None) -> RawClient:
    """A raw client whose socket lives in the server's namespace."""
    assert server.netns is not None
    with server.netns.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf_bytes is not None:  # before connect: the window it advertises stays this small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
    sock.connect((HOST, server.port))
    sock.setblocking(False)
    client = RawClient(
        await connect(server.ws_url, sock=sock, max_size=None, origin=ws_origin(server.ws_url))
    )
    await client.send({"type": "hello", "protocol": 1})
    await client.recv("welcome")
    return client


async def test_a_client_that_stops_reading_is_cut_off_without_hurting_others(
    tmp_path: Path,
) -> None:
    netns = Namespace()
    # Loopback's 64 KiB MTU lets the kernel queue megabytes for a socket that is not read (send
    # buffers grow with the MSS); at Ethernet's MTU and with small TCP buffers it queues tens of
    # kilobytes, so the server's own bound (the outbox) is what a stuck client meets within
    # seconds. Both settings belong to this namespace only.
    netns.run("ip", "link", "set", "lo", "mtu", "1500")
    netns.run("sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536")
    netns.run("sysctl", "-qw", "net.ipv4.tcp_rmem=4096 16384 65536")
    server = ServerProcess(
        tmp_path,
        served_config(
            "[captions]\nenabled = false\n",
            server_section=f"outbox_max_messages = {OUTBOX_MAX_MESSAGES}\n",
        ),
        netns=netns,
    )
    server.start()
    readers: list[RawClient] = []
    stuck: RawClient | None = None
    try:
        names = [f"r{i}" for i in range(SENDERS)]
        for name in names:
            readers.append(await open_client(server))
            await join(readers[-1], "room", name)
        stuck = await open_client(server, rcvbuf_bytes=STUCK_RCVBUF_BYTES)
        stuck_id = await join(stuck, "room", "stuck")
        for reader in readers:
            await reader.drain(0.3)
        stuck.ws.transport.pause_reading()  # from here on it reads nothing

        rss_before = rss_bytes(server.pid)
        fds_before = open_fds(server.pid)  # four clients connected
        sent_at: dict[str, float] = {}
        received: list[list[tuple[str, float]]] = [[] for _ in readers]
        left_at: list[float] = []
        rss_peak = [rss_before]
        stop = asyncio.Event()

        async def chat(index: int) -> None:
            client, seq = readers[index], 0
            next_s = time.monotonic()
            while not stop.is_set():
                key = f"{names[index]}-{seq}"
                sent_at[key] = time.monotonic()
                await client.send({"type": "chat", "text": key + " " + "x" * CHAT_CHARS})
                seq += 1
                next_s += 1 / CHATS_PER_S
                await asyncio.sleep(max(0.0, next_s - time.monotonic()))

        async def read(index: int) -> None:
            client = readers[index]
            with contextlib.suppress(ConnectionClosed):
                async for raw in client.ws:
                    message: dict[str, Any] = json.loads(raw)
                    now = time.monotonic()
                    if message["type"] == "chat":
                        received[index].append((message["text"].split(" ", 1)[0], now))
                    elif message["type"] == "participant_left" and index == 0:
                        if message["participant_id"] == stuck_id:
                            left_at.append(now)
                    elif message["type"] == "error":
                        raise AssertionError(f"{names[index]} got {message}")

        async def watch_memory() -> None:
            while not stop.is_set():
                rss_peak[0] = max(rss_peak[0], rss_bytes(server.pid))
                await asyncio.sleep(0.2)

        t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        readers_tasks = [loop.create_task(read(i)) for i in range(SENDERS)]
        busy = [loop.create_task(chat(i)) for i in range(SENDERS)]
        busy.append(loop.create_task(watch_memory()))
        await asyncio.sleep(TRAFFIC_S)
        stop.set()
        await asyncio.gather(*busy)
        # the last messages arrive: every reader gets every chat (its own too)
        await wait_until(lambda: all(len(got) >= len(sent_at) for got in received), 5)
        fds_after = open_fds(server.pid)  # the three readers still connected
        for reader in readers:
            await reader.close()
        await asyncio.gather(*readers_tasks)

        # what the stuck client was sent before the cut: the kernel's share, read only now
        stuck.ws.transport.resume_reading()
        stuck_chats = 0
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                stuck_chats += (
                    json.loads(await asyncio.wait_for(stuck.ws.recv(), 5))["type"] == "chat"
                )

        assert left_at, "the stuck client is still in the room"
        cut_s = left_at[0] - t0
        delays = sorted(t - sent_at[key] for per_reader in received for key, t in per_reader)
        delay_p50, delay_max = delays[len(delays) // 2], delays[-1]
        closing = [line for line in server.log_text().splitlines() if "closing client" in line]
        growth = rss_peak[0] - rss_before
        print(
            f"stuck reader: out of the room {cut_s:.1f} s after the traffic began (it had taken"
            f" {stuck_chats} of {len(sent_at)} chats), close {stuck.ws.close_code};"
            f" the {SENDERS} others got every chat in order, delay p50 {1000 * delay_p50:.0f} ms"
            f" max {1000 * delay_max:.0f} ms; server RSS +{growth / 2**20:.1f} MiB,"
            f" fds {fds_before} -> {fds_after}"
        )
        report(
            "stalled_reader",
            {
                "cut_after_s": round(cut_s, 2),
                "chats": len(sent_at),
                "stuck_received": stuck_chats,
                "delay_p50_ms": round(1000 * delay_p50, 1),
                "delay_max_ms": round(1000 * delay_max, 1),
                "rss_growth_mib": round(growth / 2**20, 2),
            },
        )
        # the stuck one, and only it, was cut for not reading; its socket is gone
        assert len(closing) == 1 and "code=outbox_full" in closing[0], closing
        assert f"participant={stuck_id}" in closing[0]
        assert stuck.ws.close_code in (1006, 1008)
        assert cut_s <= 10 * TIME_SCALE
        assert stuck_chats < len(sent_at) / 2
        # the others: every message, the same order for all, in time
        order = [key for key, _ in received[0]]
        assert sorted(order) == sorted(sent_at)
        for per_reader in received[1:]:
            assert [key for key, _ in per_reader] == order
        for name in names:  # each sender's messages in the order it sent them
            mine = [key for key in order if key.startswith(f"{name}-")]
            assert mine == sorted(mine, key=lambda key: int(key.split("-")[1]))
        assert delay_max <= 2 * TIME_SCALE
        # nothing kept for it: bounded memory, its socket closed
        assert growth < 16 * 2**20
        assert fds_after <= fds_before - 1
        assert unhandled_in_log(server.log_text()) == []
    finally:
        for client in [*readers, *([stuck] if stuck else [])]:
            client.ws.transport.abort()
        server.stop()
        netns.close()

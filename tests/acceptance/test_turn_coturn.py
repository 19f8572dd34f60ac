"""TURN with a real coturn (Debian's `turnserver`): the credentials Parley puts in `joined`
allocate a relay; a tampered or expired one is refused. All on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aioice import stun, turn
from websockets.asyncio.client import connect

from server.app import App
from server.turn import turn_credential
from tests.support.app import loopback_settings, ws_url
from tests.support.origin import ws_origin
from tests.support.server import free_port
from tests.support.waits import TIME_SCALE

pytestmark = pytest.mark.media

SECRET = "coturn-test-secret"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def coturn() -> Iterator[int]:
    exe = shutil.which("turnserver")
    assert exe is not None, "coturn is not installed (scripts/system-deps.sh installs it)"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}"]
        + ["--relay-ip=127.0.0.1", "--use-auth-secret", f"--static-auth-secret={SECRET}"]
        + ["--realm=parley.test", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout"]
        + ["--min-port=49152", "--max-port=49300", "--allow-loopback-peers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10 * TIME_SCALE
        while not listening(port):  # coturn takes TCP on its listening port too
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.communicate()[0].decode()[-2000:])
            time.sleep(0.05)  # polling another process: there is no event to wait on
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


async def allocate(port: int, username: str, credential: str) -> tuple[str, int]:
    transport, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", port), username, credential, lifetime=60
    )
    try:
        relayed: tuple[str, int] = transport.get_extra_info("sockname")
        return relayed
    finally:
        transport.close()


async def joined_ice(app: App) -> list[dict[str, Any]]:
    """The ICE servers a participant gets once admitted (``joined``)."""
    url = ws_url(app)
    async with connect(url, origin=ws_origin(url)) as ws:
        await ws.send(json.dumps({"type": "hello", "protocol": 1}))
        welcome = json.loads(await ws.recv())
        assert "ice_servers" not in welcome
        await ws.send(json.dumps({"type": "join", "room": "relay", "name": "Ann"}))
        joined = json.loads(await ws.recv())
    servers: list[dict[str, Any]] = joined["ice_servers"]
    return servers


async def test_joined_credentials_allocate_on_coturn(coturn: int) -> None:
    app = App(
        loopback_settings(turn={"urls": [f"turn:127.0.0.1:{coturn}"], "static_auth_secret": SECRET})
    )
    await app.start()
    try:
        entry = (await joined_ice(app))[-1]
    finally:
        await app.stop()
    assert entry["urls"] == [f"turn:127.0.0.1:{coturn}"]
    relayed = await allocate(coturn, entry["username"], entry["credential"])
    print(f"coturn relayed address {relayed} for {entry['username']}")
    assert relayed[0] == "127.0.0.1" and 49152 <= relayed[1] <= 49300

    tampered = entry["credential"][:-4] + ("AAA=" if entry["credential"][-4:] != "AAA=" else "BBB=")
    with pytest.raises(stun.TransactionFailed, match="401 - Unauthorized"):
        await allocate(coturn, entry["username"], tampered)
    expired_user, expired_credential = turn_credential(
        SECRET, "c-old", now_s=time.time() - 7200, ttl_s=3600
    )
    with pytest.raises(stun.TransactionFailed, match="401 - Unauthorized"):
        await allocate(coturn, expired_user, expired_credential)

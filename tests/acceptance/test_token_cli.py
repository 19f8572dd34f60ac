"""`parley token` prints a join link whose token the server accepts; a reachable server without
access control does not start."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt

from server.app import App
from tests.support.app import loopback_settings, ws_url
from tests.support.raw import RawClient

BIN = Path(sys.executable).parent / "parley"
SECRET = "c0ffee" * 8


def parley(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)


async def test_token_link_admits_to_its_room_with_its_role(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET + "\n")
    config = tmp_path / "parley.toml"
    config.write_text(f'[auth]\nsecret_file = "{tmp_path / "secret"}"\n')
    out = parley(
        "token",
        "--config",
        str(config),
        "--room",
        "board",
        "--role",
        "host",
        "--ttl",
        "2h",
        "--name",
        "Ada",
        "--base-url",
        "https://meet.example.org/",
    )
    assert out.returncode == 0, out.stderr
    link = urlsplit(out.stdout.strip())
    assert (link.scheme, link.netloc, link.path) == ("https", "meet.example.org", "/")
    # the token rides in the fragment: browsers never send it (no request line, no access log)
    assert parse_qs(link.query) == {"room": ["board"]}
    token = parse_qs(link.fragment)["token"][0]

    app = App(loopback_settings(auth={"secret_file": str(tmp_path / "secret")}))
    await app.start()
    try:
        client = await RawClient.connect(ws_url(app))
        await client.send({"type": "join", "room": "board", "name": "typed", "token": token})
        joined = await client.recv("joined")
        assert joined["role"] == "host"
        participant = app.signaling.registry.get("board")
        assert participant is not None
        (ada,) = participant.participants.values()
        assert (ada.name, ada.role) == ("Ada", "host")
        # the same link does not open another room
        other = await RawClient.connect(ws_url(app))
        await other.send({"type": "join", "room": "lobby2", "name": "x", "token": token})
        assert (await other.error())["code"] == "token_wrong_room"
        await client.close()
        await other.close()
    finally:
        await app.stop()
    claims = jwt.decode(token, SECRET.encode(), algorithms=["HS256"])
    assert abs(claims["exp"] - time.time() - 7200) < 60


def test_token_needs_a_key_and_a_valid_role() -> None:
    out = parley("token", "--room", "board")
    assert out.returncode == 2 and "auth.secret" in out.stderr
    out = parley("token", "--room", "board", "--role", "admin")
    assert out.returncode == 2 and "admin" in out.stderr
    out = parley("token", "--room", "board", "--ttl", "soon")
    assert out.returncode == 2 and "soon" in out.stderr


def test_a_reachable_server_without_access_control_does_not_start() -> None:
    out = parley("serve", "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 2
    assert "server.host = '0.0.0.0'" in out.stderr and "auth.mode = 'open'" in out.stderr


def test_token_links_start_with_the_public_url(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[server]\npublic_url = "https://meet.example.org/"\n[auth]\nsecret = "{SECRET}"\n'
    )
    out = parley("token", "--config", str(config), "--room", "board")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("https://meet.example.org/?")

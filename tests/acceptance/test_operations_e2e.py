"""Acceptance (issue 4, points 4 and 6) on `parley serve` as an operator runs it, with live
captions (real Whisper and Apertium) and real aiortc participants:

- /readyz is 503 while the models load, then 200; /metrics is scraped during the meeting;
- SIGTERM while the speaker is mid-utterance: the reader gets `server_closing`, then the final
  caption of the utterance in flight, then close 1001; the process exits 0 within 10 s;
- the server's JSON logs of the whole meeting (captions and chat, room and private) carry room
  and participant ids and none of the caption or chat text (original or translated);
- with [retention] on, the finals and the room chat message are on disk, the private one is not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.metrics import parse_text
from tests.support.client import FileAudio, ParleyClient
from tests.support.origin import ws_origin
from tests.support.paths import evalset_dir
from tests.support.server import ServerProcess, free_port

pytestmark = [pytest.mark.media, pytest.mark.models]

BIN = Path(sys.executable).parent / "parley"
EXIT_DEADLINE_S = 10.0
ROOM_CHAT = "Please send the quarterly budget figures to the whole team before Friday."
PRIVATE_CHAT = "My door code is seven four one nine, come in quietly."


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def wait_ready(base: str, timeout_s: float = 60) -> list[int]:
    """Poll /readyz until 200; returns every status seen (connection refused is skipped)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status, _ = await asyncio.to_thread(fetch, f"{base}/readyz")
        except OSError:
            await asyncio.sleep(0.05)
            continue
        seen.append(status)
        if status == 200:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready in {timeout_s} s: {seen[-5:]}")


def ngrams(text: str, n: int = 3) -> set[str]:
    words = re.sub(r"[^\w\s']", " ", text.lower()).split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


async def test_sigterm_mid_utterance_flushes_finals_and_logs_hold_no_text(tmp_path: Path) -> None:
    port = free_port()
    config = (
        "[server]\nhost = '127.0.0.1'\n"
        f"port = {port}\n"
        f"data_dir = '{tmp_path / 'data'}'\n"
        "[retention]\nmode = 'jsonl'\nkinds = ['captions', 'chat']\n"
        "[media]\nice_host_addresses = ['127.0.0.1']\n"
        "[captions]\nenabled = true\n"
        # debug: the most the server ever logs must still hold no caption text
        "[logging]\nformat = 'json'\nlevel = 'debug'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_WORKER_LOG_LEVEL"] = "DEBUG"
    # host and port as the configuration says (the command line repeats the port)
    server = ServerProcess(
        tmp_path, config, port=port, host=None, command=[str(BIN), "serve"], env=env
    )
    server.start(wait=False)  # run_meeting watches /readyz go from 503 to 200
    try:
        await run_meeting(server, f"127.0.0.1:{port}", server.log_path, tmp_path / "data")
    finally:
        await asyncio.to_thread(server.stop, 15, signal.SIGKILL)


async def run_meeting(server: ServerProcess, host: str, log_path: Path, data_dir: Path) -> None:
    base = f"http://{host}"
    statuses = await wait_ready(base)
    print(f"/readyz while starting: {statuses[:3]}... then 200 after {len(statuses)} polls")
    assert statuses[0] == 503  # listening while the models load, but not ready

    clip = evalset_dir() / "audio" / "en" / "fleurs-en-000.ogg"
    voice = FileAudio(str(clip))
    voice.pcm = np.tile(np.concatenate([voice.pcm, np.zeros(24_000, np.int16)]), 4)
    url = f"ws://{host}/ws"
    speaker = ParleyClient(url, room="ops", name="Speaker", audio=voice, lang="en")
    reader = ParleyClient(url, room="ops", name="Reader")
    try:
        await reader.join()
        await reader.send({"type": "captions", "languages": ["es"]})
        await speaker.join()
        await reader.send({"type": "chat", "text": ROOM_CHAT, "lang": "en"})
        await speaker.send({"type": "chat", "text": PRIVATE_CHAT, "to": reader.participant_id})
        assert await reader.wait_for(lambda: len(chats(reader.messages)) == 2, 15)
        await sigterm_mid_utterance(server, base, speaker, reader)
    finally:
        await speaker.close()
        await reader.close()
    check_logs(await asyncio.to_thread(log_path.read_text), reader.messages, speaker, reader)
    check_retained(data_dir, reader.messages)


def chats(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "chat"]


def check_retained(data_dir: Path, messages: list[dict[str, Any]]) -> None:
    """[retention] mode = "jsonl": every final the reader got is on disk, and the room chat
    message; not the private one."""
    files = sorted((data_dir / "transcripts" / "ops").glob("*.jsonl"))
    assert files, list(data_dir.rglob("*"))
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    chat = [r for r in records if r["kind"] == "chat"]
    assert [r["text"] for r in chat] == [ROOM_CHAT]
    assert PRIVATE_CHAT not in json.dumps(records)
    stored = [r for r in records if r["kind"] == "captions"]
    finals = [m for m in messages if m["type"] == "caption" and m["final"]]
    assert [r["caption_id"] for r in stored] == [m["caption_id"] for m in finals]
    assert [r["text"] for r in stored] == [m["text"] for m in finals]
    assert all(r["kind"] == "captions" and r["machine_generated"] for r in stored)
    assert {p.name for p in data_dir.iterdir()} == {"transcripts"}  # nothing else is kept


async def sigterm_mid_utterance(
    server: ServerProcess, base: str, speaker: ParleyClient, reader: ParleyClient
) -> None:
    def captions(final: bool) -> list[dict[str, Any]]:
        return [m for m in reader.messages if m["type"] == "caption" and m["final"] is final]

    def in_flight() -> dict[str, Any] | None:
        """The latest interim whose utterance has no final yet (the speaker is mid-sentence)."""
        done = {m["caption_id"] for m in captions(True)}
        pending = [m for m in captions(False) if m["caption_id"] not in done]
        return pending[-1] if pending else None

    assert await reader.wait_for(lambda: bool(captions(True)) and in_flight() is not None, 40)
    # the scrape, mid-meeting (acceptance 4)
    status, text = await asyncio.to_thread(fetch, f"{base}/metrics")
    assert status == 200
    values = parse_text(text)
    assert values["parley_participants"] == 2 and values["parley_speech_worker_up"] == 1
    assert values["parley_caption_latency_seconds_count"] >= 1
    assert values['parley_forwarded_frames_total{kind="audio"}'] > 0

    interim = in_flight()
    assert interim is not None
    finals_before = len(captions(True))
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    status, body = await asyncio.to_thread(fetch, f"{base}/readyz")
    assert status == 503 and "draining" in body

    returncode = await asyncio.wait_for(asyncio.to_thread(server.proc.wait), EXIT_DEADLINE_S)
    exit_s = time.monotonic() - signalled
    types = [m["type"] for m in reader.messages]
    closing_at = types.index("server_closing")
    late_finals = [m for m in reader.messages[closing_at:] if m["type"] == "caption" and m["final"]]
    print(
        f"exit {exit_s:.2f} s after SIGTERM; in flight {interim['caption_id']} "
        f"({interim['text']!r}); finals after server_closing: "
        f"{[(m['caption_id'], m['text']) for m in late_finals]}"
    )
    assert returncode == 0
    assert exit_s <= EXIT_DEADLINE_S
    # the utterance being spoken at SIGTERM was finished and delivered after the notice
    assert interim["caption_id"] in {m["caption_id"] for m in late_finals}
    assert len(captions(True)) > finals_before
    flushed = next(m for m in late_finals if m["caption_id"] == interim["caption_id"])
    assert flushed["translations"].get("es"), flushed
    assert reader.ws is not None and reader.ws.close_code == 1001


def check_logs(
    logs: str, messages: list[dict[str, Any]], speaker: ParleyClient, reader: ParleyClient
) -> None:
    """JSON lines with ids; no caption text, original or translated (acceptance 4)."""
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(
        e["event"] == "joined" and e["room"] == "ops" and e["participant"] == speaker.participant_id
        for e in events
    )
    assert any(e["event"] == "stopped" for e in events)
    stored = next(e for e in events if e["event"] == "stored on disk")
    assert "final captions and chat as JSON lines under" in stored["what"]
    notice = next(m for m in messages if m["type"] == "notice")
    assert "stores final captions and room chat for up to 720 hours" in notice["text"]
    not_json = [line for line in logs.splitlines() if line and not line.startswith("{")]
    assert not not_json, not_json[:5]
    texts = [str(m["text"]) for m in messages if m["type"] in ("caption", "chat")]
    texts += [
        t for m in messages if m["type"] in ("caption", "chat") for t in m["translations"].values()
    ]
    assert {m["text"] for m in chats(messages)} == {ROOM_CHAT, PRIVATE_CHAT}
    spoken = set().union(*(ngrams(t) for t in texts))
    assert len(spoken) > 10  # the meeting really was captioned
    lowered = " ".join(re.sub(r"[^\w\s']", " ", logs.lower()).split())
    leaked = sorted(g for g in spoken if g in lowered)
    print(f"{len(events)} log events, {len(spoken)} caption trigrams checked")
    assert not leaked, leaked[:10]
    finals = [m["text"] for m in messages if m["type"] == "caption" and m["final"]]
    assert all(str(text).strip() and str(text).lower() not in logs.lower() for text in finals)


async def test_self_signed_tls_and_turn_credentials_in_welcome(tmp_path: Path) -> None:
    """`parley serve --tls self-signed`: HTTPS and WSS with a certificate made for this machine
    (verified against the file it wrote, by host name), its fingerprint in the log; `welcome`
    carries a TURN entry with coturn REST credentials."""
    import ssl

    from websockets.asyncio.client import connect

    from server.turn import turn_credential

    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env |= {
        "PARLEY_SERVER__DATA_DIR": str(data),
        "PARLEY_CAPTIONS__ENABLED": "false",
        "PARLEY_LOGGING__FORMAT": "json",
        "PARLEY_TURN__URLS": '["turn:turn.example.org:3478"]',
        "PARLEY_TURN__STATIC_AUTH_SECRET": "test-secret",
    }
    server = ServerProcess(
        tmp_path,
        None,
        port=port,
        host=None,
        command=[str(BIN), "serve"],
        args=["--tls", "self-signed"],
        env=env,
    )
    server.start(wait=False)  # ready is HTTPS here: checked below
    try:
        cert = data / "tls" / "cert.pem"
        deadline = time.monotonic() + 30
        while not cert.exists() or not await https_ok(port, cert):
            assert server.alive() and time.monotonic() < deadline
            await asyncio.sleep(0.2)
        context = ssl.create_default_context(cafile=str(cert))
        url = f"wss://localhost:{port}/ws"
        async with connect(url, ssl=context, origin=ws_origin(url)) as ws:
            await ws.send(json.dumps({"type": "hello", "protocol": 1}))
            welcome = json.loads(await ws.recv())
            assert "ice_servers" not in welcome  # TURN credentials only once admitted
            await ws.send(json.dumps({"type": "join", "room": "tls", "name": "Ann"}))
            joined = json.loads(await ws.recv())
            assert joined["type"] == "joined"
        # plain HTTP on the TLS port gets nowhere
        with pytest.raises(OSError):
            await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{port}/readyz", None, 2
            )
    finally:
        returncode = await asyncio.wait_for(
            asyncio.to_thread(server.stop, EXIT_DEADLINE_S), EXIT_DEADLINE_S + 5
        )
    assert returncode == 0
    events = [json.loads(line) for line in server.log_text().splitlines()]
    listening = next(e for e in events if e["event"] == "listening")
    assert listening["url"].startswith("https://")
    auth = next(e for e in events if e["event"] == "auth mode")
    assert (auth["mode"], auth["decided"]) == ("open", "automatically")
    shown = next(e for e in events if e["event"] == "tls certificate")
    from cryptography import x509

    from server.tls import fingerprint

    assert shown["generated"] is True
    assert shown["sha256_fingerprint"] == fingerprint(
        x509.load_pem_x509_certificate(cert.read_bytes())
    )
    turn = joined["ice_servers"][-1]
    assert turn["urls"] == ["turn:turn.example.org:3478"]
    expiry, label = turn["username"].split(":")
    # the default lifetime is short (1 h)
    assert 3_000 < int(expiry) - time.time() <= 3_600 and label.startswith("c-")
    assert (
        turn["credential"]
        == turn_credential("test-secret", label, now_s=int(expiry) - 3_600, ttl_s=3_600)[1]
    )


async def https_ok(port: int, cert: Path) -> bool:
    import ssl

    context = ssl.create_default_context(cafile=str(cert))

    def probe() -> bool:
        try:
            with urllib.request.urlopen(
                f"https://localhost:{port}/readyz", timeout=2, context=context
            ) as response:
                return bool(response.status == 200)
        except (OSError, ssl.SSLError):
            return False

    return await asyncio.to_thread(probe)

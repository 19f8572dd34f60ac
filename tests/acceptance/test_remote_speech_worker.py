"""Acceptance (issue 17, point 2): ``parley speech-worker`` in its own network namespace (a
veth pair, test addresses) dials the server over TLS (wss, the server's self-signed
certificate, checked) and serves a room's speaker; SIGKILLed mid-
utterance, its speaker moves to the server's local worker with the audio since their last final:
captions resume within 3 s and every utterance of the stream gets a final. A worker with a wrong
secret is refused, and the server logs why."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from server.app import App
from tests.support.app import loopback_settings
from tests.support.client import FileAudio, ParleyClient
from tests.support.netns import Namespace
from tests.support.paths import EVALSET, REPO
from tests.support.server import parley_bin
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.media, pytest.mark.models]

SECRET = "a-shared-secret-for-speech-workers"
UTTERANCES = 3
#: a test subnet per run (several runs may share the machine)
NET = f"10.{97 + os.getpid() % 50}.{os.getpid() % 250}"
HOST_IP, WORKER_IP = f"{NET}.1", f"{NET}.2"


def _veth(worker_ns: Namespace) -> str:
    """A veth pair: ``HOST_IP`` here, ``WORKER_IP`` in the worker's namespace; the host end's
    name (deleting it deletes both)."""
    host_if, ns_if = f"pwh{os.getpid()}"[:15], f"pwn{os.getpid()}"[:15]
    subprocess.run(
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if]
        + ["netns", str(worker_ns.pid)],
        check=True,
        capture_output=True,
    )
    subprocess.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", host_if], check=True)
    subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
    worker_ns.run("ip", "addr", "add", f"{WORKER_IP}/24", "dev", ns_if)
    worker_ns.run("ip", "link", "set", ns_if, "up")
    return host_if


def _worker(
    ns: Namespace, url: str, secret_file: Path, log: Path, cafile: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [*ns.prefix, parley_bin(), "speech-worker", "--connect", url, "--cafile", str(cafile)]
            + ["--secret-file", str(secret_file), "--threads", "1", "--capacity", "8"]
            + ["--name", "netns-box"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,  # the relay and its worker process die together
        )


async def test_remote_worker_in_a_namespace_dies_and_its_speaker_moves_without_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = json.loads((EVALSET / "longform" / "en_fleurs_concat.json").read_text())
    segments = meta["segments"][:UTTERANCES]
    secret_file, wrong_file = tmp_path / "secret", tmp_path / "wrong"
    secret_file.write_text(SECRET)
    wrong_file.write_text("not-the-secret-of-this-server")
    worker_ns = Namespace()
    host_if = _veth(worker_ns)
    app = App(
        loopback_settings(
            server={"host": HOST_IP, "data_dir": str(tmp_path / "data")},
            auth={"mode": "open"},
            tls={"mode": "self-signed"},
            captions={
                "enabled": True,
                "workers": 1,
                "cpu_threads": 1,
                "worker_secret_file": str(secret_file),
            },
        )
    )
    worker: subprocess.Popen[bytes] | None = None
    clients: list[ParleyClient] = []
    try:
        await app.start()
        assert app.captions is not None and app.tls is not None
        pool = app.captions.worker
        cafile = app.tls.cert_path  # the worker checks the server's self-signed certificate
        monkeypatch.setenv("SSL_CERT_FILE", str(cafile))  # and so do this test's clients
        url = f"wss://{HOST_IP}:{app.port}/speech-worker"
        # a worker with the wrong secret: refused, and the server says why
        refused = _worker(worker_ns, url, wrong_file, tmp_path / "refused.log", cafile)
        status = await asyncio.to_thread(refused.wait, 60 * TIME_SCALE)
        assert status == 3, (tmp_path / "refused.log").read_text()
        assert "refused" in (tmp_path / "refused.log").read_text()
        logged = capsys.readouterr()
        assert "speech worker refused" in logged.out and "wrong secret" in logged.out
        assert "not-the-secret" not in logged.out + logged.err

        worker = _worker(worker_ns, url, secret_file, tmp_path / "worker.log", cafile)
        ws = f"wss://{HOST_IP}:{app.port}/ws"
        reader = ParleyClient(ws, room="far", name="Reader")
        clients.append(reader)

        def remote_up() -> bool:
            return any(w.kind == "remote" and w.up for w in pool.workers())

        assert await reader.wait_for(remote_up, 90), (tmp_path / "worker.log").read_text()
        voice = FileAudio(str(EVALSET / "longform" / "en_fleurs_concat.flac"))
        voice.pcm = voice.pcm[: int((segments[-1]["end"] + 1.0) * 48_000)]
        speaker = ParleyClient(ws, room="far", name="Speaker", audio=voice, lang="en")
        clients.append(speaker)
        await reader.join()
        await reader.send({"type": "captions", "languages": ["en"]})
        await speaker.join()
        sid = speaker.participant_id or ""
        assert await reader.wait_for(lambda: pool.worker_of(sid) is not None, 20)
        assert pool.worker_of(sid) == "remote-netns-box"  # capacity 8 against 2

        kill_at = segments[1]["speech_start"] + 3.0  # in the middle of the 2nd utterance
        assert await reader.wait_for(
            lambda: voice.started_s is not None and time.monotonic() - voice.started_s >= kill_at,
            60,
        )
        os.killpg(worker.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def captions() -> list[dict[str, object]]:
            return [m for m in reader.messages if m["type"] == "caption"]

        def finals() -> list[dict[str, object]]:
            return [m for m in captions() if m["final"] and str(m["text"]).strip()]

        def after_kill() -> list[dict[str, object]]:
            return [m for m in captions() if float(m["_received_s"]) > killed_at]  # type: ignore[arg-type]

        assert await reader.wait_for(lambda: bool(after_kill()), 10)
        resumed_s = float(after_kill()[0]["_received_s"]) - killed_at  # type: ignore[arg-type]
        assert pool.worker_of(sid) == "local-0"
        last_end = segments[-1]["speech_end"]
        assert await reader.wait_for(
            lambda: any(float(f["end_s"]) >= last_end - 1.0 for f in finals()),  # type: ignore[arg-type]
            60,
        )
        print(f"\ncaptions resumed {resumed_s:.2f} s after the kill; moves {dict(pool.moves)}")
        for f in finals():
            print(f"  final {f['start_s']}-{f['end_s']} {f['text']}")
        assert resumed_s <= 3.0 * TIME_SCALE
        assert pool.moves["worker_down"] == 1
        for segment in segments:
            covering = [
                f
                for f in finals()
                if float(f["start_s"]) < segment["speech_end"]  # type: ignore[arg-type]
                and float(f["end_s"]) > segment["speech_start"]  # type: ignore[arg-type]
            ]
            assert covering, f"no final for {segment['id']}: {finals()}"
        second = " ".join(
            str(f["text"]).lower()
            for f in finals()
            if float(f["start_s"]) < segments[1]["speech_end"] - 1  # type: ignore[arg-type]
        )
        assert "nouns" in second, second  # the killed utterance from its first word
        assert np.isfinite(resumed_s)
    finally:
        for client in clients:
            await client.leave()
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        await app.stop()
        await asyncio.to_thread(
            subprocess.run, ["ip", "link", "del", host_if], check=False, capture_output=True
        )
        worker_ns.close()
        for name in ("refused.log", "worker.log"):
            if (tmp_path / name).exists():
                sys.stderr.write((tmp_path / name).read_text()[-2000:])

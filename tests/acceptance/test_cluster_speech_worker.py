"""Acceptance (issue 18, the speech-worker pool across nodes): Redis and two ``parley serve
--cluster`` nodes on a namespace LAN, neither running a speech worker of its own (``workers =
0``), and one ``parley speech-worker --cluster redis://…`` in a namespace of its own. The worker
reads the node directory from Redis and attaches to a node; when a captioned speaker joins a room
on the other node (its speakers wait for a worker there), the idle worker moves there and the
room gets captions. That node is SIGKILLed: the worker's link drops, it reattaches to the live
node, the room moves there at the next join, and captions flow again, from the same worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from server.cluster.speech import WorkerRecord
from server.cluster.speech_worker import read_workers
from tests.support.client import FileAudio, ParleyClient
from tests.support.cluster import start_cluster
from tests.support.lan import Lan
from tests.support.netns import Namespace
from tests.support.paths import EVALSET, REPO
from tests.support.redis_server import RedisServer
from tests.support.server import HOST, ServerProcess, free_port, parley_bin
from tests.support.waits import TIME_SCALE

pytestmark = [pytest.mark.media, pytest.mark.models]

T = TypeVar("T")

SECRET = "a-shared-secret-for-the-clusters-speech-workers"
PORT = 8750
ROOM = "captioned"
#: a test subnet per run (several runs may share the machine)
SUBNET = f"10.{150 + os.getpid() % 50}.{os.getpid() % 250}"


def sections(secret_file: Path) -> str:
    # tiny.en: what is tested is that captions follow the worker across nodes, not their quality
    return (
        "[captions]\nenabled = true\nworkers = 0\ncpu_threads = 1\n"
        f'model = "tiny.en"\ntranslation_engines = []\nworker_secret_file = "{secret_file}"\n'
    )


def node_id(node: ServerProcess) -> str:
    return f"{node.host}-{node.port}"


def captions_of(client: ParleyClient, speaker: str) -> list[dict[str, Any]]:
    return [
        m
        for m in client.messages
        if m["type"] == "caption" and m["participant_id"] == speaker and str(m["text"]).strip()
    ]


def metrics_text(node: ServerProcess) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{node.http_url}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def start_worker(
    ns: Namespace, redis_url: str, secret_file: Path, log: Path
) -> subprocess.Popen[bytes]:
    """``parley speech-worker --cluster`` in ``ns``; it moves after 1 s idle (10 s by default)."""
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [*ns.prefix, parley_bin(), "speech-worker", "--cluster", redis_url]
            + ["--secret-file", str(secret_file), "--threads", "1", "--capacity", "2"]
            + ["--name", "cluster-box", "--move-after-idle-s", "1"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            start_new_session=True,  # the relay and its worker process die together
        )


async def until(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float
) -> T:
    """Probe (Redis, another process's state: nothing to wait on) until ``done`` or the
    (scaled) timeout; the last value."""
    deadline = time.monotonic() + timeout_s * TIME_SCALE
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def speak(url: str, voice: FileAudio) -> tuple[ParleyClient, ParleyClient]:
    """A reader who takes English captions, then a speaker, in ``ROOM`` through ``url``."""
    reader = ParleyClient(url, room=ROOM, name="Reader")
    await reader.join()
    await reader.send({"type": "captions", "languages": ["en"]})
    speaker = ParleyClient(url, room=ROOM, name="Speaker", audio=voice, lang="en")
    await speaker.join()
    return reader, speaker


async def test_a_cluster_worker_goes_where_captions_are_needed_and_follows_the_room(
    tmp_path: Path,
) -> None:
    meta = json.loads((EVALSET / "longform" / "en_fleurs_concat.json").read_text())
    clip = EVALSET / "longform" / "en_fleurs_concat.flac"
    first = meta["segments"][0]
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    lan = Lan(SUBNET)
    parts: list[Any] = []
    clients: list[ParleyClient] = []
    worker: subprocess.Popen[bytes] | None = None
    worker_log = tmp_path / "worker.log"
    store: Redis | None = None
    try:
        lan.join_from_here(1)  # this test's clients reach the nodes
        redis, nodes = start_cluster(
            lan,
            tmp_path,
            2,
            port=PORT,
            sections=sections(secret_file),
            cluster="heartbeat_interval_s = 0.5\nnode_ttl_s = 1.5\n",
            parts=parts,
        )
        store = Redis.from_url(redis.url, decode_responses=True)

        async def record() -> WorkerRecord | None:
            """The worker's record in Redis (what ``parley workers --cluster`` lists)."""
            assert store is not None
            found = await read_workers(store, "parley")
            return found[0] if len(found) == 1 else None

        async def wait_record(node: str | None, timeout_s: float) -> WorkerRecord:
            """Until the worker serves ``node`` (None: any)."""
            rec = await until(
                record,
                lambda r: r is not None and (r.node == node if node else bool(r.node)),
                timeout_s,
            )
            assert rec is not None and (rec.node == node if node else rec.node), (
                rec,
                worker_log.read_text()[-3000:],
            )
            return rec

        # every node says where workers connect and that nobody waits yet
        for node in nodes:
            info = json.loads(await store.get(f"parley:node:{node_id(node)}") or "{}")
            assert info["speech"] == {
                "url": f"ws://{node.host}:{PORT}/speech-worker",
                "speakers": 0,
                "waiting": 0,
                "workers": 0,
                "capacity": 0,
            }, info

        worker_ns, _ = lan.host(20)
        worker = start_worker(worker_ns, redis.url, secret_file, worker_log)
        # it attaches to one node (nobody speaks yet: its own favourite)
        first_node = (await wait_record(None, 30)).node
        by_id = {node_id(n): n for n in nodes}
        stays = by_id[first_node]
        dies = next(n for n in nodes if n is not stays)

        # a captioned speaker in a room on the other node: they wait there, the idle worker
        # moves to them, and the room gets captions
        voice = FileAudio(str(clip))
        voice.pcm = voice.pcm[: int((first["end"] + 0.5) * 48_000)]
        reader, speaker = await speak(dies.ws_url, voice)
        clients += [reader, speaker]
        assert await store.get(f"parley:room:{ROOM}") == node_id(dies)
        await wait_record(node_id(dies), 20)
        sid = speaker.participant_id or ""
        assert await reader.wait_for(lambda: bool(captions_of(reader, sid)), 30), (
            worker_log.read_text()[-3000:]
        )
        assert "idle: moving from node" in worker_log.read_text()
        assert "speech worker connected" in dies.log_text()

        # the room's node dies: the worker reattaches to the live node; the room moves there at
        # the next join and captions flow again
        for client in clients:
            await client.close()
        clients.clear()
        dies.stop(sig=signal.SIGKILL)
        await wait_record(node_id(stays), 20)
        heartbeat = await until(  # its heartbeat expired: the room is free
            lambda: store.get(f"parley:node:{node_id(dies)}"), lambda v: v is None, 10
        )
        assert heartbeat is None
        voice = FileAudio(str(clip))
        voice.pcm = voice.pcm[: int((first["end"] + 0.5) * 48_000)]
        reader, speaker = await speak(stays.ws_url, voice)
        clients += [reader, speaker]
        assert await store.get(f"parley:room:{ROOM}") == node_id(stays)
        sid = speaker.participant_id or ""
        assert await reader.wait_for(lambda: bool(captions_of(reader, sid)), 30), (
            worker_log.read_text()[-3000:]
        )
        rec = await record()
        assert rec is not None and rec.node == node_id(stays) and rec.name == "cluster-box"
        assert stays.metrics()["parley_speech_workers_up"] == 1
        # its /metrics shows each node's caption demand as the heartbeats say it
        demand = await until(
            lambda: asyncio.to_thread(metrics_text, stays),
            lambda text: (
                f'parley_cluster_node_speech_workers{{node="{node_id(stays)}"}} 1.0' in text
            ),
            5,
        )
        assert f'parley_cluster_node_captioned_speakers{{node="{node_id(stays)}"}} 1.0' in demand
        # operators see the cluster-wide pool
        listing = await asyncio.to_thread(
            subprocess.run,
            [parley_bin(), "workers", "--cluster", redis.url],
            capture_output=True,
            text=True,
            check=True,
        )
        assert rec.worker_id in listing.stdout and node_id(stays) in listing.stdout
        assert "1/2" in listing.stdout, listing.stdout
        # stopped on purpose (SIGTERM), it leaves the registry at once
        os.killpg(worker.pid, signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 15 * TIME_SCALE) == 0
        assert await record() is None
        # no caption text in the worker's log
        words = " ".join(str(c["text"]) for c in captions_of(reader, sid)).split()
        logged = worker_log.read_text()
        assert not [w for w in words if len(w) > 6 and w in logged], "caption text in the log"
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(worker.wait, 15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        if store is not None:
            await store.aclose()
        for part in reversed(parts):
            part.stop()
        lan.close()
        if worker_log.exists():
            sys.stderr.write(worker_log.read_text()[-3000:])


def test_bad_cluster_input_is_a_clear_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    base = [parley_bin(), "speech-worker", "--secret-file", str(secret_file)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)

    out = run("--cluster", "http://10.0.0.10:6379/0")
    assert out.returncode == 2 and "redis://" in out.stderr, out.stderr
    out = run(
        "--cluster", "redis://10.0.0.10:6379/0", "--connect", "ws://127.0.0.1:1/speech-worker"
    )
    assert out.returncode == 2 and "either --connect" in out.stderr, out.stderr
    out = run()
    assert out.returncode == 2 and "either --connect" in out.stderr, out.stderr
    out = run("--cluster", f"redis://{HOST}:{free_port()}/0")  # nobody listens there
    assert out.returncode == 2 and "cannot reach the cluster's Redis" in out.stderr, out.stderr

    # a Redis with no node that takes workers: the worker says so, and waits for one
    with RedisServer(tmp_path, host=HOST, port=free_port()) as redis:
        log = tmp_path / "worker.log"
        with log.open("wb") as stderr:
            waiting = subprocess.Popen(
                [*base, "--cluster", redis.url], stderr=stderr, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 30 * TIME_SCALE
            while "no live node takes speech workers" not in log.read_text():
                assert waiting.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)  # another process's log: nothing to wait on
            listing = subprocess.run(
                [parley_bin(), "workers", "--cluster", redis.url],
                capture_output=True,
                text=True,
                check=True,
            )
            # registered while it waits: no node, no speaker
            assert "WORKER" in listing.stdout and " -  " in listing.stdout, listing.stdout
            assert "0/2" in listing.stdout, listing.stdout
        finally:
            os.killpg(waiting.pid, signal.SIGKILL)
            waiting.wait()

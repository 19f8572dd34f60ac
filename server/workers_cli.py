"""``parley workers``: the speech workers of a running server, read from its ``/metrics``
(so it works wherever Prometheus can scrape, and needs nothing else from the server)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from interpret.remote_worker import RemoteWorkerSettings

    from .cluster.speech_worker import ClusterWorkerSettings

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(slots=True)
class WorkerRow:
    worker: str
    kind: str = "?"
    model: str = "?"
    device: str = "?"
    up: bool = False
    values: dict[str, float] = field(default_factory=dict)
    moves: dict[str, float] = field(default_factory=dict)


def parse_workers(text: str) -> list[WorkerRow]:
    """The per-worker series of a ``/metrics`` exposition, one row per worker."""
    rows: dict[str, WorkerRow] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or not match["name"].startswith("parley_speech_worker_"):
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        worker = labels.get("worker")
        if worker is None:
            continue
        row = rows.setdefault(worker, WorkerRow(worker))
        name = match["name"].removeprefix("parley_speech_worker_").removesuffix("_total")
        value = float(match["value"])
        if name == "info":
            row.kind, row.model, row.device = labels["kind"], labels["model"], labels["device"]
            row.up = value >= 1
        elif name == "moves":
            row.moves[labels.get("reason", "?")] = value
        else:
            row.values[name] = value
    return sorted(rows.values(), key=lambda r: r.worker)


def table(rows: list[WorkerRow]) -> str:
    header = "WORKER KIND UP MODEL DEVICE SPEAKERS RTF BUSY QUEUE_S RESTARTS MOVES".split()
    lines: list[tuple[str, ...]] = [tuple(header)]
    for r in rows:
        v = r.values
        moves = ",".join(f"{k}={int(n)}" for k, n in sorted(r.moves.items()) if n) or "0"
        lines.append(
            (
                r.worker,
                r.kind,
                "yes" if r.up else "no",
                r.model,
                r.device,
                f"{int(v.get('speakers', 0))}/{int(v.get('capacity', 0))}",
                f"{v.get('real_time_factor', 0):.2f}",
                f"{v.get('busy_ratio', 0):.2f}",
                f"{v.get('queue_seconds', 0):.1f}",
                str(int(v.get("restarts", 0))),
                moves,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def metrics_url(settings: Settings) -> str:
    s = settings.server
    if s.public_url:
        return s.public_url.rstrip("/") + "/metrics"
    host = "127.0.0.1" if s.host in {"0.0.0.0", "::", ""} else s.host
    scheme = "http" if settings.tls.mode == "off" else "https"
    return f"{scheme}://{host}:{s.port}/metrics"


def workers(
    url: Annotated[
        str | None,
        typer.Option(help="The server's /metrics URL (default: from the configuration)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The server's configuration file.")
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Accept any TLS certificate (a self-signed one on a LAN).")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="List a cluster's speech workers (parley speech-worker --cluster) from its"
            " Redis instead: redis://HOST:PORT/DB.",
        ),
    ] = None,
    key_prefix: Annotated[
        str, typer.Option(help="With --cluster: the cluster's [cluster] key_prefix.")
    ] = "parley",
) -> None:
    """List the speech workers of a running server: speakers, real-time factor, queue,
    restarts and placement moves of each (from its /metrics); with --cluster, the cluster's
    workers and the node each one serves (from Redis)."""
    if cluster is not None:
        typer.echo(_cluster_table(cluster, key_prefix))
        return
    if url is None:
        try:
            url = metrics_url(load_settings(config, environ=os.environ))
        except ConfigError as exc:
            typer.echo(f"parley: {exc}", err=True)
            raise typer.Exit(2) from None
    context = ssl._create_unverified_context() if insecure else None
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"parley: cannot read {url}: {exc}", err=True)
        raise typer.Exit(1) from None
    rows = parse_workers(text)
    if not rows:
        captions_on = re.search(r"^parley_captions_enabled 1(\.0)?$", text, re.MULTILINE)
        typer.echo(
            "no speech worker connected: captions paused"
            if captions_on
            else "captions are off on this server (no speech workers)"
        )
        return
    typer.echo(table(rows))


def _cluster_table(redis_url: str, key_prefix: str) -> str:
    from redis.exceptions import RedisError

    from .cluster.speech_worker import (
        ClusterWorkerError,
        ClusterWorkerSettings,
        open_redis,
        read_workers,
    )

    async def read() -> list[WorkerRecordRow]:
        redis = open_redis(ClusterWorkerSettings(redis_url=redis_url, key_prefix=key_prefix))
        try:
            return [
                (r.worker_id, r.node or "-", r.device, f"{r.speakers}/{r.capacity}", r.version)
                for r in await read_workers(redis, key_prefix)
            ]
        finally:
            await redis.aclose()

    try:
        rows = asyncio.run(read())
    except ClusterWorkerError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cluster") from None
    except (RedisError, OSError) as exc:
        typer.echo(f"parley: cannot read the cluster's Redis at {redis_url}: {exc}", err=True)
        raise typer.Exit(1) from None
    if not rows:
        return "no cluster speech worker registered"
    lines: list[WorkerRecordRow] = [("WORKER", "NODE", "DEVICE", "SPEAKERS", "VERSION"), *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


#: a cluster worker's row: id, node, device, speakers/capacity, version
WorkerRecordRow = tuple[str, str, str, str, str]


def speech_worker(
    secret_file: Annotated[
        Path,
        typer.Option(help="The shared secret (the server's [captions] worker_secret_file)."),
    ],
    connect: Annotated[
        str | None,
        typer.Option(
            "--connect", help="The server's worker endpoint: wss://HOST[:PORT]/speech-worker."
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Serve a cluster instead (its Redis: redis://HOST:PORT/DB): the node that"
            " needs a worker most, another one when it dies.",
        ),
    ] = None,
    key_prefix: Annotated[
        str, typer.Option(help="With --cluster: the cluster's [cluster] key_prefix.")
    ] = "parley",
    move_after_idle_s: Annotated[
        float,
        typer.Option(
            min=0,
            help="With --cluster: after serving no speaker this long, move to a node that"
            " needs workers much more (0: never).",
        ),
    ] = 10.0,
    device: Annotated[str, typer.Option(help="cpu | cuda: where Whisper runs.")] = "cpu",
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for recognition (default: the server's).")
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option(help="Speakers served in real time (default: 2 on cpu, 8 on cuda)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Speakers' decodes sent to Whisper as one batch (default: 8 on cuda, else the"
            " server's [captions] batch_size).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="How the server lists it (default: this host's name).")
    ] = None,
    cafile: Annotated[
        Path | None, typer.Option(help="Trust this CA or self-signed certificate (PEM).")
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Accept any TLS certificate (tests, a LAN you control).")
    ] = False,
) -> None:
    """Run a speech worker for a server on another machine: it dials the server, announces its
    device and capacity, and captions the speakers the server places on it (audio as Opus).
    With --cluster it serves the nodes of a cluster, one at a time, where it is needed most."""
    from interpret.remote_worker import RefusedError, RemoteWorkerSettings, run

    from .cluster.speech_worker import ClusterWorkerError, ClusterWorkerSettings, open_redis

    if device not in ("cpu", "cuda"):
        raise typer.BadParameter("cpu or cuda", param_hint="--device")
    if (connect is None) == (cluster is None):
        raise typer.BadParameter("give either --connect URL or --cluster REDIS_URL")
    if connect is not None and not connect.startswith(("ws://", "wss://")):
        raise typer.BadParameter("a ws:// or wss:// URL", param_hint="--connect")
    cluster_settings: ClusterWorkerSettings | None = None
    if cluster is not None:
        cluster_settings = ClusterWorkerSettings(
            redis_url=cluster, key_prefix=key_prefix, move_after_idle_s=move_after_idle_s
        )
        try:
            redis = open_redis(cluster_settings)
        except ClusterWorkerError as exc:
            raise typer.BadParameter(str(exc), param_hint="--cluster") from None
    try:
        secret = secret_file.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        typer.echo(f"parley: cannot read {secret_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    context: ssl.SSLContext | None = None
    if connect is None or connect.startswith("wss://"):  # a cluster's nodes may use wss
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    elif not connect.startswith("ws://127.") and not connect.startswith("ws://localhost"):
        typer.echo("parley: warning: ws:// sends the secret and audio in clear", err=True)
    settings = RemoteWorkerSettings(
        url=connect or "",
        secret=secret,
        name=name or socket.gethostname(),
        device=device,
        cpu_threads=threads,
        capacity=capacity or (8 if device == "cuda" else 2),
        batch_size=batch_size or (8 if device == "cuda" else None),
    )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="speech-worker %(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if cluster_settings is None:
                asyncio.run(run(settings, ssl_context=context))
            else:
                asyncio.run(_serve_cluster(settings, cluster_settings, redis, context))
    except RefusedError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(3) from None
    except ClusterWorkerError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None


async def _serve_cluster(
    settings: RemoteWorkerSettings,
    cluster: ClusterWorkerSettings,
    redis: Redis,
    context: ssl.SSLContext | None,
) -> None:
    from .cluster.speech_worker import ClusterSpeechWorker

    worker = ClusterSpeechWorker(settings, cluster, redis=redis, ssl_context=context)
    # SIGTERM (systemd's stop): leave the node and the registry at once, not when keys expire
    main = asyncio.current_task()
    assert main is not None
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        main.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        await worker.run()
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await redis.aclose()

"""The ``parley`` command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import TypeAdapter, ValidationError

from . import __version__
from .config_cli import config as config_app
from .models_cli import models
from .settings import ConfigError, defaults_text, load_settings
from .workers_cli import speech_worker, workers

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Parley: self-hosted meetings with live interpretation.",
)


@cli.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML file overriding config/defaults.toml (see `parley defaults`).",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (overrides server.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port, 0 for any free one (overrides server.port).")
    ] = None,
    tls: Annotated[
        str | None,
        typer.Option(
            "--tls",
            help="off | self-signed (a certificate for LAN use, made once under the data "
            "directory) | files (tls.cert_file, tls.key_file); overrides tls.mode.",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="redis://HOST:PORT/DB: join the cluster of nodes placing rooms through this "
            "Redis (overrides cluster.redis_url; see cluster.node_address).",
        ),
    ] = None,
) -> None:
    """Run the server: web client at http://HOST:PORT/, signaling at ws://HOST:PORT/ws
    (https:// and wss:// with --tls)."""
    overrides: dict[str, Any] = {}
    if cluster is not None:
        overrides["cluster"] = {"redis_url": cluster}
    if tls is not None:
        overrides["tls"] = {"mode": tls}
    if host is not None:
        overrides.setdefault("server", {})["host"] = host
    if port is not None:
        overrides.setdefault("server", {})["port"] = port
    try:
        settings = load_settings(config, environ=os.environ, **overrides)
    except ConfigError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    from .app import App, ListenError, configure_logging

    configure_logging(settings)
    try:
        app = App(settings)
    except ConfigError as exc:  # e.g. an unreadable auth.secret_file
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(app.run_forever())
    except ListenError as exc:  # one line, not a traceback: the reason and what to do
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(1) from None
    except ConfigError as exc:  # found at start, e.g. Redis of [cluster] unreachable
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None


_TTL_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl_s(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` or plain seconds -> seconds."""
    text = text.strip().lower()
    unit = _TTL_UNITS_S.get(text[-1:], None)
    number = text[:-1] if unit is not None else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use e.g. 90s, 30m, 2h or 1d") from None
    if not 0 < value <= 366 * 86400:
        raise typer.BadParameter(f"{text!r}: between 1 second and a year")
    return value


@cli.command()
def token(
    room: Annotated[str, typer.Option(help="The room the token admits to.")],
    role: Annotated[
        str, typer.Option(help="host | participant | interpreter | viewer.")
    ] = "participant",
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90s, 30m, 2h, 1d.")] = "2h",
    name: Annotated[
        str | None, typer.Option(help="Fix the display name (otherwise the joiner picks it).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Public address of the server (default [server] public_url, else "
            "http://server.host:port)."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The server's configuration file.")
    ] = None,
) -> None:
    """Print a join link with a signed room token (uses the configured secret or private key)."""
    from urllib.parse import urlencode

    from .auth import ROLES, issue_token
    from .protocol import RoomName
    from .rooms import Role

    if role not in ROLES:
        raise typer.BadParameter(f"{role!r}: one of {', '.join(sorted(ROLES))}", param_hint="role")
    try:
        TypeAdapter(RoomName).validate_python(room)
    except ValidationError:
        raise typer.BadParameter(
            f"{room!r}: 1-64 characters of A-Z a-z 0-9 _ -", param_hint="room"
        ) from None
    ttl_s = parse_ttl_s(ttl)
    try:
        settings = load_settings(config, environ=os.environ)
        if not settings.auth.has_token_key():
            raise ConfigError(
                "no token key is configured: set auth.secret or auth.secret_file "
                "(or auth.private_key_path for RS256/ES256/EdDSA)"
            )
        signed = issue_token(
            settings.auth, room=room, role=cast(Role, role), ttl_s=ttl_s, name=name
        )
    except ConfigError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    s = settings.server
    base_url = base_url or s.public_url or None
    if base_url is None and s.host in {"0.0.0.0", "::"}:
        typer.echo(
            "parley: server.host is a wildcard; pass --base-url with the public address "
            "(or set [server] public_url)",
            err=True,
        )
    base = (base_url or f"http://{s.host}:{s.port}").rstrip("/")
    # the token goes in the fragment: browsers never send it, so it stays out of request lines,
    # proxy access logs and Referer headers; the page takes it off the address at load
    typer.echo(f"{base}/?{urlencode({'room': room})}#{urlencode({'token': signed})}")


@cli.command()
def interpret(
    audio: Annotated[Path, typer.Argument(help="Audio or video file (anything FFmpeg reads).")],
    to: Annotated[str, typer.Option("--to", help="Target languages, comma-separated: es,fr.")] = "",
    source: Annotated[
        str, typer.Option("--from", help="Spoken language (ISO 639-1), or auto to detect.")
    ] = "auto",
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Feed the audio at 1x on the wall clock.")
    ] = False,
    vtt: Annotated[
        Path | None, typer.Option(help="Write one WebVTT file per language here.")
    ] = None,
    srt: Annotated[Path | None, typer.Option(help="Write one SRT file per language here.")] = None,
    model: Annotated[
        str, typer.Option(help="Whisper model: base, tiny.en, or a model directory.")
    ] = "base",
    threads: Annotated[int, typer.Option(help="CPU threads for recognition.")] = 2,
    speaker: Annotated[str, typer.Option(help="Speaker id in the events.")] = "speaker",
) -> None:
    """Caption a recording with the live pipeline: one JSON object per caption event per line."""
    from .file_captions import CaptionLog, feed_file, load_audio, write_subtitles

    targets = [t.strip() for t in to.split(",") if t.strip()]
    log_sink = CaptionLog(out=sys.stdout)
    pipeline, close = _build_pipeline(model, threads, targets, log_sink)
    try:
        samples = load_audio(audio)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the user's file
        typer.echo(f"parley: cannot read {audio}: {exc}", err=True)
        raise typer.Exit(2) from None
    pipeline.add_speaker(speaker, None if source == "auto" else source)
    pipeline.start()

    def started() -> None:
        log_sink.t0 = time.monotonic()

    feed_file(pipeline, samples, speaker_id=speaker, realtime=realtime, on_start=started)
    pipeline.stop(drain=True)
    close()
    if pipeline.error is not None:
        typer.echo(f"parley: recognition failed: {pipeline.error}", err=True)
        raise typer.Exit(1)
    finals = [f for f, _ in log_sink.finals or []]
    languages = sorted({f.lang for f in finals} | set(targets))
    for directory, fmt in ((vtt, "vtt"), (srt, "srt")):
        if directory is not None:
            for path in write_subtitles(finals, directory, audio.stem, languages, fmt):
                typer.echo(f"wrote {path}", err=True)


@cli.command()
def translate(
    source: Annotated[str, typer.Option("--from", help="Source language (ISO 639-1).")],
    target: Annotated[str, typer.Option("--to", help="Target language (ISO 639-1).")],
) -> None:
    """Translate lines from stdin to stdout with the engines the pipeline uses."""
    from interpret.translate_router import EngineRegistry, NoRoute, TranslationRouter

    router = TranslationRouter(EngineRegistry.discover())
    route = router.route(source, target)
    if isinstance(route, NoRoute):
        typer.echo(f"parley: {route.reason}" + (f" ({route.hint})" if route.hint else ""), err=True)
        raise typer.Exit(2)
    translator = router.translator(route)
    typer.echo(f"parley: {route}", err=True)
    try:
        for line in sys.stdin:
            text = line.rstrip("\n")
            print(translator.translate(text) if text.strip() else text, flush=True)
    finally:
        router.close()


def _build_pipeline(model: str, threads: int, targets: list[str], sink: Any) -> tuple[Any, Any]:
    """The pipeline a speech worker runs (interpret.compose), built in this process."""
    from interpret.compose import PipelineConfig, build_pipeline
    from interpret.models import ModelError
    from interpret.transcribe import RecognizerSettings

    config = PipelineConfig(
        recognizer=RecognizerSettings(model=model, cpu_threads=threads), targets=tuple(targets)
    )
    try:
        built = build_pipeline(config, sink.emit)
    except ModelError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    return built.pipeline, built.close


@cli.command()
def defaults() -> None:
    """Print the embedded default configuration (every setting, commented)."""
    typer.echo(defaults_text(), nl=False)


@cli.command()
def version() -> None:
    """Print Parley's version."""
    typer.echo(__version__)


cli.command()(workers)
cli.command("speech-worker")(speech_worker)
cli.add_typer(models, name="models")
cli.add_typer(config_app, name="config")


def main() -> None:
    cli()

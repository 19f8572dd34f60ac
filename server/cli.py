"""The ``parley`` command."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__
from .settings import ConfigError, defaults_text, load_settings

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
) -> None:
    """Run the server: web client at http://HOST:PORT/, signaling at ws://HOST:PORT/ws."""
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides.setdefault("server", {})["host"] = host
    if port is not None:
        overrides.setdefault("server", {})["port"] = port
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    from .app import App, configure_logging

    configure_logging(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(App(settings).run_forever())


@cli.command()
def defaults() -> None:
    """Print the embedded default configuration (every setting, commented)."""
    typer.echo(defaults_text(), nl=False)


@cli.command()
def version() -> None:
    """Print Parley's version."""
    typer.echo(__version__)


def main() -> None:
    cli()

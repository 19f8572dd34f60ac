"""``parley config``: check a configuration without starting anything."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from .settings import ConfigError, load_settings

config = typer.Typer(add_completion=False, no_args_is_help=True, help="Configuration files.")


@config.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="TOML file to validate (see `parley defaults`).")],
    env: Annotated[
        bool,
        typer.Option(help="Also apply PARLEY_<SECTION>__<KEY> environment variables."),
    ] = True,
) -> None:
    """Validate FILE as `parley serve --config FILE` would: exit 0 when valid, else 2 and one
    line per problem (source, key, reason)."""
    try:
        settings = load_settings(file, environ=os.environ if env else None)
    except ConfigError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    s = settings.server
    typer.echo(
        f"{file}: ok (listens on {s.host}:{s.port}, tls {settings.tls.mode}, "
        f"captions {'on' if settings.captions.enabled else 'off'}, "
        f"retention {settings.retention.mode})"
    )

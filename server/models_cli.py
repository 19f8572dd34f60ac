"""``parley models``: what speech and translation models this machine has, installing more.

Nothing here downloads unless the operator says so (``--allow-download`` for Whisper hub
models); Argos packages come as ``.argosmodel`` files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

models = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Speech and translation models."
)

ArgosDir = Annotated[
    Path | None,
    typer.Option(
        "--argos-dir",
        help="Argos packages directory (default: $ARGOS_PACKAGES_DIR or Argos's own).",
    ),
]


@models.command("list")
def list_models(argos_dir: ArgosDir = None) -> None:
    """Whisper models, Argos packages and Apertium pairs usable without a download."""
    from interpret.models import ModelResolver
    from interpret.translate_apertium import discover_apertium_modes
    from interpret.translate_argos import list_argos_packages

    for info in ModelResolver().available():
        where = str(info.path) if info.path else "installed (cache built on first use)"
        typer.echo(f"whisper  {info.name:<10} {info.source:<8} {where}")
    for package in list_argos_packages(argos_dir):
        typer.echo(f"argos    {package.from_code}→{package.to_code:<6} {package.path}")
    for mode in discover_apertium_modes():
        typer.echo(f"apertium {mode.source}→{mode.target:<6} {mode.path}")


@models.command()
def install(
    spec: Annotated[
        str, typer.Argument(help="A .argosmodel file, or a Whisper model: base, tiny.en.")
    ],
    argos_dir: ArgosDir = None,
    allow_download: Annotated[
        bool, typer.Option(help="Let faster-whisper fetch a hub model by name (goes online).")
    ] = False,
) -> None:
    """Install an Argos package file, or prepare a Whisper model (join, verify, cache)."""
    if spec.endswith(".argosmodel"):
        from interpret.translate import TranslationError
        from interpret.translate_argos import install_argos_package

        try:
            package = install_argos_package(Path(spec), argos_dir)
        except (OSError, TranslationError) as exc:
            typer.echo(f"parley: cannot install {spec}: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"installed {package}")
        return
    from interpret.models import ModelError, ModelResolver

    try:
        path = ModelResolver(allow_download=allow_download).resolve(spec)
    except ModelError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"whisper {spec}: {path}")


@models.command()
def remove(
    pair: Annotated[str, typer.Argument(help="An Argos pair, e.g. en-de.")],
    argos_dir: ArgosDir = None,
) -> None:
    """Remove an installed Argos package."""
    from interpret.translate_argos import list_argos_packages, remove_argos_package

    source, _, target = pair.partition("-")
    found = [
        p for p in list_argos_packages(argos_dir) if (p.from_code, p.to_code) == (source, target)
    ]
    if not found:
        typer.echo(f"parley: no Argos package {source}→{target} installed", err=True)
        raise typer.Exit(2)
    for package in found:
        remove_argos_package(package)
        typer.echo(f"removed {package}")


@models.command()
def verify(
    spec: Annotated[str, typer.Argument(help="Whisper model: base, tiny.en or a path.")] = "base",
) -> None:
    """Check that a Whisper model resolves and its files are intact."""
    from interpret.models import ModelError, ModelResolver

    try:
        path = ModelResolver().resolve(spec)
    except ModelError as exc:
        typer.echo(f"parley: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok {spec}: {path}")

"""The Debian Apertium language pairs the translation tests use (make system-deps)."""

from __future__ import annotations

from pathlib import Path

MODES = Path("/usr/share/apertium/modes")


def apertium_mode(name: str) -> Path:
    path = MODES / f"{name}.mode"
    assert path.is_file(), (
        f"{path} missing: apt-get install apertium apertium-eng-spa apertium-fr-es"
    )
    return path

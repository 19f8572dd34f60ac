"""Acceptance (issue 4, point 5): `parley config check` validates without starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

BIN = Path(sys.executable).parent / "parley"


def check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [str(BIN), "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_wrong_type_and_unknown_key_are_both_named(tmp_path: Path) -> None:
    bad = tmp_path / "operator.toml"
    bad.write_text('[server]\nport = "eighty"\n\n[captions]\nenabled = true\nlanguage = "en"\n')
    out = check(bad)
    assert out.returncode != 0
    lines = out.stderr.splitlines()
    print(out.stderr)
    assert any(
        f"{bad}: server.port: " in line and "valid integer" in line and "'eighty'" in line
        for line in lines
    ), out.stderr
    assert any(f"{bad}: captions.language: unknown key" in line for line in lines), out.stderr
    assert out.stdout == ""


def test_environment_is_checked_too(tmp_path: Path) -> None:
    good = tmp_path / "ok.toml"
    good.write_text("[server]\nport = 9000\n")
    out = check(good, PARLEY_SERVER__PORT="99999")
    assert out.returncode != 0
    assert "environment PARLEY_SERVER__PORT: server.port: " in out.stderr


def test_valid_files_pass() -> None:
    out = check(REPO / "config" / "example.toml")
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "0.0.0.0:8750" in out.stdout


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    out = check(tmp_path / "absent.toml")
    assert out.returncode != 0 and "absent.toml" in out.stderr

"""The pure JavaScript modules of the browser client (caption line breaking, transcript formats)
have unit tests under tests/unit/web/, run with Node's built-in test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB_TESTS = Path(__file__).resolve().parent


def test_javascript_units() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (make system-deps)")
    files = sorted(str(p) for p in WEB_TESTS.glob("*.test.mjs"))
    assert files
    done = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout

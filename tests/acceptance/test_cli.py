"""Acceptance: `parley serve` as a user runs it: listening, serving the join page, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

BIN = Path(sys.executable).parent / "parley"


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    server = ServerProcess(
        tmp_path,
        None,  # the embedded defaults
        command=[str(BIN), "serve"],
        # captions off: this test is about serving pages (no model load before ready)
        env={**os.environ, "NO_COLOR": "1", "PARLEY_CAPTIONS__ENABLED": "false"},
    )
    server.start()
    yield server.http_url
    returncode = server.stop(sig=signal.SIGINT, timeout_s=10)
    out = server.log_text()
    assert returncode == 0, out
    assert "Traceback" not in out, out


def test_serve_answers_with_the_join_page(served: str) -> None:
    status, content_type, body = get(f"{served}/")
    assert status == 200 and content_type.startswith("text/html")
    assert "<form" in body and 'name="room"' in body and 'name="name"' in body
    status, content_type, body = get(f"{served}/protocol.js")
    assert status == 200 and content_type.startswith("text/javascript")
    assert "RTCPeerConnection" in body
    assert get(f"{served}/../pyproject.toml")[0] == 404
    assert get(f"{served}/nothing-here")[0] == 404
    # a plain GET on the WebSocket path is refused, not served: without an Origin (open mode)
    # before the handshake looks at it (else websockets would answer 426 Upgrade Required)
    assert get(f"{served}/ws")[0] == 403


def test_help_documents_every_option() -> None:
    out = subprocess.run([str(BIN), "serve", "--help"], capture_output=True, text=True, check=True)
    for option in ("--config", "--host", "--port", "--help"):
        assert option in out.stdout


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    out = subprocess.run(
        [str(BIN), "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "server.port" in out.stderr and "bad.toml" in out.stderr

"""Issue 13 bug 6 (server side): start-up errors in one line with the reason and a next step,
and a non-zero exit, instead of a traceback or a server that never gets ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "parley"


def run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [str(BIN), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**env, "NO_COLOR": "1"},
    )


def test_a_second_server_on_the_same_port_says_one_line(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text("")  # the defaults: captions on (nothing is loaded before listening)
    with socket.create_server(("127.0.0.1", 0)) as taken:  # the first "server" on the port
        port = taken.getsockname()[1]
        out = run("serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port))
    print(out.stderr)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0], lines
    assert "--port" in lines[0]  # what to do
    assert out.stdout == ""


def test_an_unknown_model_fails_config_check_and_serve_fast(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text('[captions]\nenabled = true\nmodel = "huge"\n')
    checked = run("config", "check", str(config))
    print(checked.stderr)
    assert checked.returncode == 2
    assert f"{config}: captions.model: unknown Whisper model 'huge'" in checked.stderr
    assert "known names: base" in checked.stderr and "parley models list" in checked.stderr
    served = run("serve", "--config", str(config), "--port", "0", timeout_s=30)
    assert served.returncode == 2, served.stderr  # at once, not listening and never ready
    assert "captions.model: unknown Whisper model 'huge'" in served.stderr
    assert "Traceback" not in served.stderr
    # a model that is known but not installed says how to install it
    config.write_text('[captions]\nenabled = true\nmodel = "large-v3"\n')
    missing = run("config", "check", str(config))
    assert missing.returncode == 2
    assert "'large-v3' is not installed here: `parley models install large-v3`" in missing.stderr
    # captions off: the model is not needed, so not checked
    config.write_text('[captions]\nenabled = false\nmodel = "huge"\n')
    assert run("config", "check", str(config)).returncode == 0


def test_a_cluster_node_without_its_redis_says_so_and_exits(tmp_path: Path) -> None:
    """Issue 18: ``--cluster`` with a Redis nobody answers at: one line naming the key and the
    reason, exit 2, no traceback (the node never serves rooms it cannot place)."""
    config = tmp_path / "parley.toml"
    config.write_text("[captions]\nenabled = false\n")
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    out = run(
        "serve", "--config", str(config), "--port", "0", "--cluster", f"redis://127.0.0.1:{port}/0"
    )
    print(out.stderr)
    assert out.returncode == 2
    assert "parley: cluster.redis_url: cannot register this node with Redis" in out.stderr
    assert f"127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr
    bad = run("serve", "--config", str(config), "--port", "0", "--cluster", "http://redis:6379")
    assert bad.returncode == 2 and "cluster.redis_url: must be a redis://" in bad.stderr

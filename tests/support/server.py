"""`parley serve` in its own process, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick; free until someone binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parley_bin() -> str:
    """The server entry point: $PARLEY_BIN, else the `parley` script beside this interpreter."""
    env = os.environ.get("PARLEY_BIN")
    if env:
        return env
    beside = Path(sys.executable).parent / "parley"
    return str(beside) if beside.exists() else (shutil.which("parley") or str(beside))

"""Debian's Janus for the Janus-backend tests, in a private network namespace.

Janus's ICE (libnice) skips loopback interfaces, so Janus runs in a :class:`Namespace` that holds
``lo`` and a veth pair (``jan0`` 10.77.0.1/24 ↔ ``jan1``): Janus gathers on ``jan0`` only, the
test's aiortc peers announce 10.77.0.1 too, and its JSON API listens on 127.0.0.1 of that
namespace. The test thread enters the namespace (``Namespace.entered``) for the whole test, so
its peers, the backend's WebSocket and the tap's UDP socket all live there; nothing leaves it.

Hardened as an operator should: API secret and VideoRoom ``admin_key`` set (never Debian's
defaults), admin API off, only the VideoRoom plugin and the WebSocket transport loaded.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .netns import Namespace, available

JANUS_BIN = "/usr/bin/janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
ICE_ADDRESS = "10.77.0.1"
INTERFACE = "jan0"
_KEEP_PLUGINS = {"videoroom"}
_KEEP_TRANSPORTS = {"websockets"}


@dataclass(frozen=True, slots=True)
class RunningJanus:
    url: str
    api_secret: str
    admin_key: str
    namespace: Namespace
    log_path: Path
    #: Janus's process (a test may kill it: a media node that dies)
    pid: int = 0


def unavailable() -> str | None:
    """Why Janus cannot run here (None if it can)."""
    if not Path(JANUS_BIN).exists():
        return "janus is not installed (apt-get install janus; scripts/system-deps.sh)"
    return available()


def _disabled(kind: str, keep: set[str]) -> str:
    names = sorted(p.name for p in (LIB / kind).glob("libjanus_*.so"))
    return ",".join(n for n in names if n.removeprefix("libjanus_").removesuffix(".so") not in keep)


def write_config(folder: Path, *, ws_port: int, api_secret: str, admin_key: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{LIB / "plugins"}"
    transports_folder = "{LIB / "transports"}"
    events_folder = "{LIB / "events"}"
    loggers_folder = "{LIB / "loggers"}"
    debug_level = 4
    api_secret = "{api_secret}"
    admin_secret = "{secrets.token_hex(16)}"
    server_name = "parley-test-janus"
}}
media: {{
    rtp_port_range = "42000-42999"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{INTERFACE}"
    ignore_mdns = true
    ipv6 = false
}}
plugins: {{
    disable = "{_disabled("plugins", _KEEP_PLUGINS)}"
}}
transports: {{
    disable = "{_disabled("transports", _KEEP_TRANSPORTS)}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
""",
        encoding="utf-8",
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{
    admin_key = "{admin_key}"
    lock_rtp_forward = true
    string_ids = false
}}
""",
        encoding="utf-8",
    )
    (folder / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
    json = "plain"
    ws = true
    ws_port = {ws_port}
    ws_ip = "127.0.0.1"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
""",
        encoding="utf-8",
    )


@contextmanager
def running_janus(folder: Path, *, ws_port: int = 8188) -> Iterator[RunningJanus]:
    """Start Janus in a fresh namespace (see the module docstring); stop it afterwards."""
    why = unavailable()
    if why is not None:
        raise RuntimeError(why)
    namespace = Namespace()
    process: subprocess.Popen[bytes] | None = None
    log_path = folder / "janus.log"
    try:
        namespace.run("ip", "link", "add", INTERFACE, "type", "veth", "peer", "name", "jan1")
        namespace.run("ip", "addr", "add", f"{ICE_ADDRESS}/24", "dev", INTERFACE)
        namespace.run("ip", "link", "set", "jan1", "up")
        namespace.run("ip", "link", "set", INTERFACE, "up")
        api_secret, admin_key = secrets.token_hex(16), secrets.token_hex(16)
        write_config(folder, ws_port=ws_port, api_secret=api_secret, admin_key=admin_key)
        process = _start_process(folder, namespace, log_path, ws_port=ws_port)
        yield RunningJanus(
            f"ws://127.0.0.1:{ws_port}", api_secret, admin_key, namespace, log_path, process.pid
        )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        namespace.close()


def _start_process(
    folder: Path, namespace: Namespace, log_path: Path, *, ws_port: int
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                *namespace.prefix,
                JANUS_BIN,
                "--configs-folder",
                str(folder),
                "--config",
                str(folder / "janus.jcfg"),
                "--disable-colors",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with namespace.entered():
            _wait_listening(ws_port, process, timeout_s=20)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def restart_janus(running: RunningJanus, *, ws_port: int = 8188) -> subprocess.Popen[bytes]:
    """Start ``running``'s Janus again (same namespace, configuration and secrets) after a test
    killed it; the caller stops the new process."""
    return _start_process(
        running.log_path.parent, running.namespace, running.log_path, ws_port=ws_port
    )


def _wait_listening(port: int, process: subprocess.Popen[bytes], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"janus exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"janus not listening on 127.0.0.1:{port} within {timeout_s} s")


def has_janus() -> bool:
    return shutil.which("janus") is not None and unavailable() is None

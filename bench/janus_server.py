"""Debian's Janus (VideoRoom) for the side-by-side benchmark: installed if missing, configured in
its own folder, listening on 127.0.0.1 only.

Only what the benchmark needs is loaded: the VideoRoom plugin and the WebSocket transport (bound
to 127.0.0.1, API secret set, admin API off). ICE: no STUN, no TURN, candidates only on the
interfaces ``ice_enforce_list`` names, mDNS ignored, a fixed RTP port range.

Two uses: a standalone Janus whose clients speak its JSON API (one static room, ``ROOM_ID``),
and the media engine behind Parley's ``[media] backend = "janus"`` (``parley_backend``: no static
room, the VideoRoom's ``admin_key`` set and ``lock_rtp_forward`` on, as media/janus_room.py
creates a private room per Parley room, and as an operator should configure it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

JANUS_BIN = "/usr/bin/janus"
LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
API_SECRET = "parley-bench-api"
ADMIN_SECRET = "parley-bench-admin"
#: the VideoRoom's admin_key when Parley drives Janus (16+ characters, as Parley requires)
ADMIN_KEY = "parley-bench-videoroom-key"
ROOM_ID = 4242
HOST = "127.0.0.1"

#: every plugin and transport Debian ships except the two used here
OTHER_PLUGINS = [
    "audiobridge",
    "duktape",
    "echotest",
    "lua",
    "nosip",
    "recordplay",
    "sip",
    "streaming",
    "textroom",
    "videocall",
    "voicemail",
]
OTHER_TRANSPORTS = ["http", "mqtt", "nanomsg", "pfunix", "rabbitmq"]


class JanusUnavailableError(RuntimeError):
    pass


def ensure_installed() -> str:
    """Install Debian's ``janus`` with apt-get if it is missing (needs root); returns its
    version."""
    if not Path(JANUS_BIN).exists():
        if os.geteuid() != 0:
            raise JanusUnavailableError("janus is not installed and this is not root (apt-get)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "janus"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "janus"], capture_output=True, text=True
    )
    return f"Janus {out.stdout.strip() or '(version unknown)'} (Debian package)"


@dataclass(frozen=True, slots=True)
class JanusConfig:
    folder: Path
    ws_port: int
    interface: str = "lo"
    rtp_ports: tuple[int, int] = (40000, 40999)
    publishers: int = 4
    #: Janus as Parley's media engine: no static room, ``admin_key`` = ``ADMIN_KEY``
    parley_backend: bool = False


def write_config(cfg: JanusConfig) -> None:
    """``janus.jcfg``, the VideoRoom's and the WebSocket transport's files, in ``cfg.folder``."""
    cfg.folder.mkdir(parents=True, exist_ok=True)
    disabled_plugins = ",".join(f"libjanus_{p}.so" for p in OTHER_PLUGINS)
    disabled_transports = ",".join(f"libjanus_{t}.so" for t in OTHER_TRANSPORTS)
    (cfg.folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{cfg.folder}"
    plugins_folder = "{LIB / "plugins"}"
    transports_folder = "{LIB / "transports"}"
    events_folder = "{LIB / "events"}"
    loggers_folder = "{LIB / "loggers"}"
    debug_level = 3
    api_secret = "{API_SECRET}"
    admin_secret = "{ADMIN_SECRET}"
    session_timeout = 0
    server_name = "parley-bench-janus"
}}
media: {{
    rtp_port_range = "{cfg.rtp_ports[0]}-{cfg.rtp_ports[1]}"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "{cfg.interface}"
    ignore_mdns = true
    ipv6 = false
}}
plugins: {{
    disable = "{disabled_plugins}"
}}
transports: {{
    disable = "{disabled_transports}"
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
    (cfg.folder / "janus.plugin.videoroom.jcfg").write_text(
        _videoroom_config(cfg),
        encoding="utf-8",
    )
    (cfg.folder / "janus.transport.websockets.jcfg").write_text(
        f"""general: {{
    json = "plain"
    ws = true
    ws_port = {cfg.ws_port}
    ws_ip = "{HOST}"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
""",
        encoding="utf-8",
    )


def _videoroom_config(cfg: JanusConfig) -> str:
    if cfg.parley_backend:
        return f"""general: {{
    admin_key = "{ADMIN_KEY}"
    lock_rtp_forward = true
    string_ids = false
}}
"""
    return f"""general: {{
    string_ids = false
}}
room-{ROOM_ID}: {{
    description = "parley bench"
    publishers = {cfg.publishers}
    bitrate = 0
    fir_freq = 10
    audiocodec = "opus"
    videocodec = "vp8"
}}
"""


def argv(cfg: JanusConfig) -> list[str]:
    """The command line: our config folder, console logging only, no colours."""
    return [
        JANUS_BIN,
        "--configs-folder",
        str(cfg.folder),
        "--config",
        str(cfg.folder / "janus.jcfg"),
        "--disable-colors",
    ]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise JanusUnavailableError(f"janus exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise JanusUnavailableError(f"janus not listening on {HOST}:{port} within {timeout_s} s")


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None

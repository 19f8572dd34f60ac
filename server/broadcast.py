"""Broadcasting a room as HLS (PROTOCOL.md "Broadcast"): the host's ``broadcast_start`` /
``broadcast_stop`` / ``broadcast_pin``, the ``broadcast`` state everybody in the room sees, the
broadcast worker processes (``python -m broadcast``, one per room, restarted if they die), the
worker's hidden seat in the room (``broadcaster_join`` with a secret only that process got) and
the ``/live/<room>/...`` files for small audiences (nginx serves them in production).

The worker joins like a client, so the room's own fan-out (participants, channels, captions)
reaches it; it is kept out of the registry, so it is in no participant list, counts against no
limit, never becomes host, and the room closes when its last real participant leaves (its hidden
seat: :meth:`server.membership.Membership.join_hidden`). The host's controls and the state the
room is told: :mod:`server.features.broadcast`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from websockets.datastructures import Headers
from websockets.http11 import Response

from . import outbound
from .auth import AuthError, TokenVerifier
from .context import RoomContext
from .protocol import ProtocolError
from .recordings import Recordings
from .settings import Settings
from .web import text_response

log = structlog.get_logger(__name__)

LIVE_PREFIX = "/live/"
#: what the watch page's address is, relative to the server
WATCH_PATH = "/watch.html"
#: a worker that dies is started again after this long (while the broadcast is wanted)
RESTART_DELAY_S = 1.0
#: a worker that was asked to stop gets this long to write its last segments and ENDLIST
STOP_TIMEOUT_S = 15.0
#: and, when the broadcast is kept, this much more to finish its recording (the MP4 remux of a
#: long broadcast: copying, no encoding); ``stop`` returns after STOP_TIMEOUT_S meanwhile
RECORDING_FINISH_S = 600.0
_ROOM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
_TYPES = {
    ".m3u8": ("application/vnd.apple.mpegurl", "max-age=1"),
    ".ts": ("video/mp2t", "public, max-age=31536000, immutable"),
    ".vtt": ("text/vtt; charset=utf-8", "public, max-age=31536000, immutable"),
}


@dataclass(slots=True)
class RoomBroadcast:
    room: str
    secret: str
    #: in every segment's name, so that a later broadcast of the room never reuses a cached one
    broadcast_id: str
    work_dir: Path
    by: str | None
    pinned: str | None = None
    stopping: bool = False
    process: asyncio.subprocess.Process | None = None
    supervisor: asyncio.Task[None] | None = None
    restarts: int = 0


class BroadcastManager:
    """Every room's broadcast: its worker process and the state the room is told."""

    def __init__(self, *, settings: Settings, verifier: TokenVerifier | None) -> None:
        self.settings = settings
        #: checks the room tokens of watchers (None: no key, open mode)
        self.verifier = verifier
        self.directory = settings.broadcast.directory(settings.server.data_path())
        self.active: dict[str, RoomBroadcast] = {}
        #: the /ws URL workers connect to (set by the App once it listens)
        self.ws_url = ""
        #: supervisors of broadcasts whose room closed (their workers finish by themselves)
        self._ending: set[asyncio.Task[None]] = set()
        #: where broadcasts are kept ([retention] keeps "broadcasts"; set by the App), or None
        self.recordings: Recordings | None = None

    def is_on_air(self, room: str) -> bool:
        return room in self.active

    def check_secret(self, room: str, secret: str) -> bool:
        current = self.active.get(room)
        return current is not None and hmac.compare_digest(current.secret, secret)

    def state_message(self, room: str) -> str:
        current = self.active.get(room)
        if current is None:
            return outbound.Broadcast(on_air=False).encode()
        return outbound.Broadcast(
            on_air=True, by=current.by, watch_url=f"{WATCH_PATH}?room={room}", pinned=current.pinned
        ).encode()

    def announce(self, live: RoomContext) -> None:
        live.broadcast(self.state_message(live.name))

    # -- start / stop ----------------------------------------------------------------------------
    def start(self, live: RoomContext, by: str | None) -> None:
        if live.name in self.active:
            raise ProtocolError("bad_state", "this room is already broadcast", "broadcast_start")
        if shutil.which(self.settings.broadcast.ffmpeg) is None:
            raise ProtocolError(
                "bad_state", "broadcasting needs ffmpeg on the server", "broadcast_start"
            )
        out_dir = self.directory / live.name
        shutil.rmtree(out_dir, ignore_errors=True)  # an earlier broadcast of this room
        out_dir.mkdir(parents=True, exist_ok=True)
        current = RoomBroadcast(
            room=live.name,
            secret=secrets.token_urlsafe(32),
            broadcast_id=secrets.token_hex(3),
            work_dir=Path(tempfile.mkdtemp(prefix="parley-broadcast-")),
            by=by,
        )
        self.active[live.name] = current
        current.supervisor = asyncio.get_running_loop().create_task(
            self._supervise(current), name=f"broadcast-{live.name}"
        )
        log.info("broadcast started", room=live.name, by=by)
        self.announce(live)

    async def stop(self, room: str) -> None:
        """End the room's broadcast: the worker writes its last segments and EXT-X-ENDLIST."""
        current = self.active.pop(room, None)
        if current is None:
            return
        current.stopping = True
        process = current.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        supervisor = current.supervisor
        if supervisor is not None:
            await asyncio.wait({supervisor}, timeout=STOP_TIMEOUT_S)
            if not supervisor.done():  # the recording is being finished: awaited by aclose
                self._ending.add(supervisor)
                supervisor.add_done_callback(self._ending.discard)
        log.info("broadcast stopped", room=room)

    async def recordings_of(self, room: str) -> tuple[bool, list[dict[str, Any]]]:
        """Whether this server keeps broadcasts, and ``room``'s recordings (newest first; the
        one on air, if any, still being recorded)."""
        recordings = self.recordings
        if recordings is None:
            return False, []
        current = self.active.get(room)
        on_air = None if current is None else current.broadcast_id
        return True, await asyncio.to_thread(recordings.listing, room, on_air=on_air)

    def may_watch(self, room: str, headers: Headers) -> bool:
        """Whether a request with ``headers`` may watch ``room`` (its room token, in token
        mode)."""
        return self._may_watch(room, headers)

    def room_closed(self, room: str) -> None:
        """The room ended: its worker sees its socket close and ends the stream by itself."""
        current = self.active.pop(room, None)
        if current is not None:
            current.stopping = True
            if current.supervisor is not None:
                self._ending.add(current.supervisor)
                current.supervisor.add_done_callback(self._ending.discard)
            log.info("broadcast ends with its room", room=room)

    def begin_shutdown(self) -> None:
        """The server stops: no worker is restarted from now on; each is asked to end."""
        for current in self.active.values():
            current.stopping = True
            process = current.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()

    async def aclose(self) -> None:
        for room in list(self.active):
            await self.stop(room)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)

    def pin(self, live: RoomContext, participant_id: str | None) -> None:
        current = self.active.get(live.name)
        if current is None:
            raise ProtocolError("bad_state", "this room is not broadcast", "broadcast_pin")
        current.pinned = participant_id
        self.announce(live)

    def _job(self, current: RoomBroadcast) -> dict[str, Any]:
        b = self.settings.broadcast
        languages = b.caption_languages or self.settings.captions.translation_languages
        return {
            "url": self.ws_url,
            "room": current.room,
            "out_dir": str(self.directory / current.room),
            "work_dir": str(current.work_dir),
            "fps": b.fps,
            "segment_s": b.segment_s,
            "list_size": b.list_size,
            "audio_kbps": b.audio_kbps,
            "video": [
                {"name": f"v{i}", "width": r.width, "height": r.height, "video_kbps": r.video_kbps}
                for i, r in enumerate(b.renditions)
            ],
            "channels": list(b.channels),
            "caption_languages": list(languages) if self.settings.captions.enabled else [],
            "ffmpeg": b.ffmpeg,
            "segment_prefix": current.broadcast_id,
            "ice_host_addresses": list(self.settings.media.ice_host_addresses),
            "vod_dir": (
                None
                if self.recordings is None
                else str(self.recordings.folder(current.room, current.broadcast_id))
            ),
        }

    async def _supervise(self, current: RoomBroadcast) -> None:
        """Run the worker until the broadcast is stopped (or its room closed); restart it if
        it dies meanwhile (the stream goes on behind a discontinuity)."""
        try:
            await self._run_worker(current)
        finally:
            shutil.rmtree(current.work_dir, ignore_errors=True)

    async def _run_worker(self, current: RoomBroadcast) -> None:
        job_path = current.work_dir / "job.json"
        job_path.write_text(json.dumps(self._job(current)))
        env = {**os.environ, "PARLEY_BROADCAST_SECRET": current.secret}
        while True:
            current.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "broadcast",
                str(job_path),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
            try:
                code = await current.process.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    current.process.kill()
                await current.process.wait()
                raise
            if current.stopping or self.active.get(current.room) is not current:
                break
            current.restarts += 1
            log.warning("broadcast worker exited", room=current.room, code=code)
            await asyncio.sleep(RESTART_DELAY_S)
        if current.stopping and current.process.returncode is None:
            timeout_s = STOP_TIMEOUT_S + (RECORDING_FINISH_S if self.recordings else 0.0)
            try:
                await asyncio.wait_for(current.process.wait(), timeout_s)
            except TimeoutError:
                current.process.kill()
                await current.process.wait()

    # -- HTTP: /live/<room>/... ------------------------------------------------------------------
    async def http_response(self, path: str, headers: Headers) -> Response:
        parts = path[len(LIVE_PREFIX) :].split("/")
        if len(parts) < 2 or len(parts) > 3 or not _ROOM.match(parts[0]):
            return text_response(404, "Not Found", "not found\n")
        if not all(_PART.match(p) for p in parts[1:]):
            return text_response(404, "Not Found", "not found\n")
        suffix = "." + parts[-1].rsplit(".", 1)[-1]
        if suffix not in _TYPES:
            return text_response(404, "Not Found", "not found\n")
        if not self._may_watch(parts[0], headers):
            return text_response(403, "Forbidden", "a room token is needed to watch\n")
        file = self.directory.joinpath(*parts)
        try:
            body = await asyncio.to_thread(file.read_bytes)
        except OSError:
            return text_response(404, "Not Found", "not found\n")
        content_type, cache = _TYPES[suffix]
        fields = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", cache),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if self.settings.auth_mode() == "open" or self.settings.broadcast.public:
            fields.append(("Access-Control-Allow-Origin", "*"))
        return Response(200, "OK", Headers(fields), body)

    def _may_watch(self, room: str, headers: Headers) -> bool:
        """Open mode and ``public``: anyone; else a room token of this room (any role)."""
        if self.settings.auth_mode() == "open" or self.settings.broadcast.public:
            return True
        verifier = self.verifier
        value = headers.get("Authorization", "")
        if verifier is None or not value.startswith("Bearer "):
            return False
        try:
            verifier.verify(value[len("Bearer ") :].strip(), room)
        except AuthError:
            return False
        return True


def worker_url(settings: Settings, port: int, tls: bool) -> str:
    """Where the worker reaches this server: its own listener, on loopback when it listens on
    every address."""
    host = settings.server.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if tls else 'ws'}://{host}:{port}/ws"

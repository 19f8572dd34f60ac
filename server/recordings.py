"""Broadcasts kept as recordings (``[retention]`` with ``"broadcasts"`` in ``kinds``; PROTOCOL.md
"Broadcast"): where they are, the host's list of a room's recordings with signed download links,
the ``/recordings/`` files those links name, and their deletion after ``max_age_h``.

The broadcast worker writes each recording (broadcast/vod.py) under
``data_dir/recordings/<room>/<broadcast id>/``. A link is a capability in the path,
``/recordings/<room>/<id>/<expires>-<signature>/<file>``, signed with a key of this process: the
VOD's playlists name their files relatively, so a player follows them without a token, and a
link stops working when it expires or the server restarts (list again for fresh ones).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

from .web import text_response

PREFIX = "/recordings/"
#: how long a listed link works
LINK_TTL_S = 6 * 3600
#: Parley reads a file whole to serve it: larger ones are fetched from disk (or by nginx)
MAX_SERVED_BYTES = 1 << 30
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
    ".srt": "application/x-subrip; charset=utf-8",
    ".mp4": "video/mp4",
}


class Recordings:
    """The recordings directory of this server, and the key its links are signed with."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = secrets.token_bytes(32)

    def folder(self, room: str, broadcast_id: str) -> Path:
        return self.directory / room / broadcast_id

    def _signature(self, room: str, recording: str, expires: int) -> str:
        message = f"{room}/{recording}/{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def link_base(self, room: str, recording: str, *, now_s: float | None = None) -> str:
        expires = int((time.time() if now_s is None else now_s) + LINK_TTL_S)
        return f"{PREFIX}{room}/{recording}/{expires}-{self._signature(room, recording, expires)}/"

    def listing(self, room: str, *, on_air: str | None = None) -> list[dict[str, Any]]:
        """The room's recordings, newest first: each with its files' download links and the
        VOD's master playlist (``on_air``: the broadcast id still being recorded)."""
        items: list[dict[str, Any]] = []
        folder = self.directory / room
        if not folder.is_dir():
            return items
        for path in folder.iterdir():
            if not path.is_dir() or not _ID.match(path.name):
                continue
            try:
                info = json.loads((path / "info.json").read_text())
            except (OSError, ValueError):
                info = {}
            base = self.link_base(room, path.name)
            files = []
            for name in info.get("files", []):
                with contextlib.suppress(OSError):
                    files.append(
                        {"name": name, "url": base + name, "bytes": (path / name).stat().st_size}
                    )
            items.append(
                {
                    "recording_id": path.name,
                    "started_at": info.get("started_at"),
                    "ended_at": info.get("ended_at"),
                    "duration_s": info.get("duration_s"),
                    "recording": path.name == on_air or not info,
                    "vod_url": base + "hls/master.m3u8",
                    "files": files,
                }
            )
        items.sort(key=lambda i: -(i["started_at"] or float("inf")))
        return items

    def http_response(self, path: str) -> Response:
        """``/recordings/<room>/<id>/<expires>-<sig>/<file or hls/...>`` for a valid link."""
        parts = path[len(PREFIX) :].split("/")
        if len(parts) < 4 or len(parts) > 6 or not all(_ID.match(p) for p in parts[:3]):
            return text_response(404, "Not Found", "not found\n")
        room, recording, capability, *rest = parts
        expires_text, _, signature = capability.partition("-")
        if not expires_text.isdigit():
            return text_response(404, "Not Found", "not found\n")
        expected = self._signature(room, recording, int(expires_text))
        if not hmac.compare_digest(expected, signature) or int(expires_text) < time.time():
            return text_response(403, "Forbidden", "this link is not valid (any more)\n")
        if not all(_NAME.match(p) for p in rest) or (len(rest) > 1 and rest[0] != "hls"):
            return text_response(404, "Not Found", "not found\n")
        suffix = "." + rest[-1].rsplit(".", 1)[-1]
        if suffix not in _TYPES:
            return text_response(404, "Not Found", "not found\n")
        file = self.folder(room, recording).joinpath(*rest)
        try:
            size = file.stat().st_size
            if size > MAX_SERVED_BYTES:
                return text_response(413, "Content Too Large", "too large to serve here\n")
            body = file.read_bytes()
        except OSError:
            return text_response(404, "Not Found", "not found\n")
        fields = [
            ("Content-Type", _TYPES[suffix]),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "private, max-age=1" if suffix == ".m3u8" else "private"),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if len(rest) == 1:
            fields.append(("Content-Disposition", f'attachment; filename="{room}-{rest[0]}"'))
        return Response(200, "OK", Headers(fields), body)

    def purge(self, cutoff_s: float, *, keep: set[str] | frozenset[str] = frozenset()) -> int:
        """Delete recordings that ended (their newest file) before ``cutoff_s``, except the
        broadcast ids in ``keep`` (still on air); returns how many."""
        removed = 0
        if not self.directory.is_dir():
            return 0
        for room_dir in self.directory.iterdir():
            if not room_dir.is_dir():
                continue
            for folder in room_dir.iterdir():
                if not folder.is_dir() or folder.name in keep:
                    continue
                if _newest_mtime(folder) < cutoff_s:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            with contextlib.suppress(OSError):
                room_dir.rmdir()  # only when empty
        return removed


def _newest_mtime(folder: Path) -> float:
    """A recording's last change: info.json when it ended, else its newest playlist or file."""
    info = folder / "info.json"
    with contextlib.suppress(OSError):
        return info.stat().st_mtime
    newest = 0.0
    for path in (folder, *folder.iterdir(), *folder.glob("hls/*/index.m3u8")):
        with contextlib.suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return newest

"""What outlives a room: nothing by default.

With ``[retention] mode = "none"`` (the default) captions and chat exist only in memory (and in
the participants' browsers) and vanish with the room; :meth:`Retention.record` does nothing.
With ``mode = "jsonl"`` each record of a kind named in ``kinds`` is appended as one JSON line to
``data_dir/transcripts/<room>/<UTC date>T<hour>.jsonl``; a file is deleted once its newest
record is older than ``max_age_h`` (checked every ``purge_interval_s``), so nothing stays
longer than ``max_age_h`` plus one purge interval. A file holds at most ``max_file_bytes``:
a record that would pass it is dropped (counted in :attr:`Retention.skipped`), with one warning
per file that carries the room and kind, never the text; the next hour's file starts afresh.

Callers (captions here; chat when it exists) call ``record(room, kind, fields)`` with what is
worth keeping; the time is added here.

``"broadcasts"`` in ``kinds`` keeps each broadcast as a recording (server/recordings.py, written
by the broadcast worker under ``data_dir/recordings/``), deleted ``max_age_h`` after it ended by
the same purge.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import structlog

from .recordings import Recordings
from .settings import RetentionSettings

log = structlog.get_logger(__name__)

Kind = Literal["captions", "chat", "broadcasts", "audience"]


class Retention:
    """Appends records of the configured kinds per room; purges old files."""

    def __init__(self, settings: RetentionSettings, data_dir: Path) -> None:
        self.settings = settings
        self.directory = data_dir / "transcripts"
        self._kinds = frozenset(settings.kinds) if settings.mode == "jsonl" else frozenset()
        #: records written since start
        self.written = 0
        #: records not stored because their file was full
        self.skipped = 0
        #: the files that reached ``max_file_bytes`` this hour (one warning each)
        self._full: set[Path] = set()
        self._full_hour = ""
        #: broadcasts kept as recordings; None: not kept
        self.recordings: Recordings | None = None
        if "broadcasts" in self._kinds:
            self.recordings = Recordings(data_dir / "recordings")

    @property
    def enabled(self) -> bool:
        return bool(self._kinds)

    def describe(self) -> str:
        """One sentence for the start banner: what is stored, and where."""
        if not self.enabled:
            return "nothing: captions and chat live in memory and vanish with their room"
        kept = []
        lines = sorted(self._kinds - {"broadcasts", "audience"})
        if lines:
            kept.append(f"final {' and '.join(lines)} as JSON lines under {self.directory}/<room>/")
        if "audience" in self._kinds:
            kept.append(f"audience exports (JSON + CSV) under {self.directory}/<room>/")
        if self.recordings is not None:
            kept.append(f"broadcasts as recordings under {self.recordings.directory}/<room>/")
        return f"{'; '.join(kept)}, deleted after {self.settings.max_age_h:g} h"

    def write_export(self, room: str, json_text: str, csv_text: str) -> None:
        """An ended room's audience (``kinds`` has "audience"): JSON and CSV beside its other
        records, deleted with them (PROTOCOL.md "Audience")."""
        if "audience" not in self._kinds:
            return
        now = datetime.datetime.now(datetime.UTC)
        directory = self.directory / room
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            for suffix, text in ((".json", json_text), (".csv", csv_text)):
                (directory / f"audience-{now:%Y-%m-%dT%H%M%S}{suffix}").write_text(
                    text, encoding="utf-8"
                )
        except OSError as exc:
            log.error("cannot store the audience export", room=room, error=exc.strerror)

    def record(self, room: str, kind: Kind, fields: Mapping[str, Any]) -> None:
        """Keep one record (a final caption, a chat message) if ``kind`` is retained.

        Appends a short line (no fsync): cheap enough for the event loop."""
        if kind not in self._kinds:
            return
        now = datetime.datetime.now(datetime.UTC)
        line = json.dumps(
            {"time": now.isoformat(timespec="milliseconds"), "kind": kind, **fields},
            ensure_ascii=False,
        )
        data = (line + "\n").encode("utf-8")
        hour = f"{now:%Y-%m-%dT%H}"
        if hour != self._full_hour:
            self._full, self._full_hour = set(), hour
        # room names are [A-Za-z0-9_-]{1,64} (protocol.RoomName): safe as a directory name
        directory = self.directory / room
        path = directory / f"{hour}.jsonl"
        if path in self._full:
            self.skipped += 1
            return
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with path.open("ab") as out:
                if out.tell() + len(data) > self.settings.max_file_bytes:
                    self._full.add(path)
                    self.skipped += 1
                    log.warning(
                        "retention file full: not storing more of this room this hour",
                        room=room,
                        kind=kind,
                        max_file_bytes=self.settings.max_file_bytes,
                    )
                    return
                out.write(data)
        except OSError as exc:
            log.error("cannot store a record", room=room, kind=kind, error=exc.strerror)
            return
        self.written += 1

    def purge(self, *, now_s: float | None = None) -> int:
        """Delete files whose newest record is older than ``max_age_h`` (and recordings that
        ended longer ago); returns how many."""
        cutoff = (time.time() if now_s is None else now_s) - self.settings.max_age_h * 3600
        removed = 0 if self.recordings is None else self.recordings.purge(cutoff)
        if not self.directory.is_dir():
            return removed
        for path in [*self.directory.glob("*/*.jsonl"), *self.directory.glob("*/audience-*")]:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        for room_dir in self.directory.iterdir():
            if room_dir.is_dir() and not any(room_dir.iterdir()):
                room_dir.rmdir()
        return removed

    async def run_purger(self) -> None:
        """Forever: purge now, then every ``purge_interval_s`` (in a thread: it touches disk)."""
        while True:
            removed = await asyncio.to_thread(self.purge)
            if removed:
                log.info("purged old transcripts and recordings", files=removed)
            await asyncio.sleep(self.settings.purge_interval_s)

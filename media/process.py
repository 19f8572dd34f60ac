"""Rooms in media worker processes: each room's SFU gets a process (and a core) of its own.

The signaling loop then only relays small frames (:mod:`media.wire`) to and from
``python -m media.worker`` over pipes. A worker that dies takes only its own room with it: every
peer of that room gets :class:`media.api.PeerFailed`, so the server removes them with a clear
error, and pending calls raise :class:`media.errors.MediaWorkerError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interpret import processes
from interpret.framing import WireFormatError, receive_frame
from interpret.processes import stop_worker

from .api import EmitEvent, Kind, MediaSettings, OnAudio, PeerFailed, SpeakerAudio, TrackSource
from .errors import MediaError, MediaWorkerError
from .wire import (
    MAX_FRAME_BYTES,
    AddPeer,
    Answer,
    Close,
    Command,
    GetStats,
    HoldAudio,
    Init,
    Publish,
    RemovePeer,
    Reply,
    Request,
    Unpublish,
    decode_worker_message,
    encode_request,
)

log = logging.getLogger(__name__)

WORKER_MODULE = "media.worker"


@dataclass(frozen=True, slots=True)
class WorkerTimeouts:
    """How long the parent waits for a worker before treating it as hung (then: kill)."""

    #: from spawn to the reply to Init (Python start + importing aiortc: ~0.5 s)
    start_s: float = 20.0
    #: any room call; the inline room answers in milliseconds
    call_s: float = 10.0
    #: for the reply to Close, then again for exit after SIGTERM
    close_s: float = 5.0


class ProcessMediaBackend:
    """Implements :class:`media.api.MediaBackend` with one worker process per room.

    It keeps one spare worker started ahead (Python and aiortc already imported), so that
    opening a room takes milliseconds instead of the ~0.5 s of a cold start.
    """

    def __init__(
        self,
        settings: MediaSettings,
        *,
        timeouts: WorkerTimeouts | None = None,
        keep_spare: bool = True,
        on_audio: OnAudio | None = None,
    ) -> None:
        # with audio_tap, each worker decodes its speakers' audio and writes it to us
        if on_audio is None:
            settings = dataclasses.replace(settings, audio_tap=False)  # nobody would listen
        self._on_audio = on_audio if settings.audio_tap else None
        self._settings = settings
        self._timeouts = WorkerTimeouts() if timeouts is None else timeouts
        self._keep_spare = keep_spare
        self._rooms: set[WorkerRoom] = set()
        self._spare: asyncio.subprocess.Process | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the spare worker now, so that even the first room opens quickly."""
        if self._keep_spare and self._spare is None and not self._closed:
            self._spare = await spawn_worker()

    async def open_room(self, room_id: str, emit: EmitEvent) -> WorkerRoom:
        if self._closed:
            raise MediaWorkerError("the media backend is closed")
        process, self._spare = self._spare, None
        if process is not None and process.returncode is not None:
            log.warning("the spare media worker exited with status %d", process.returncode)
            await stop_worker(process, self._timeouts.close_s)  # closes its pipes
            process = None
        if process is None:
            process = await spawn_worker()
        room = WorkerRoom(
            room_id, process, emit=emit, timeouts=self._timeouts, on_audio=self._on_audio
        )
        self._rooms.add(room)  # from here on, aclose() stops it
        try:
            await room.start(self._settings)
            if self._closed:
                raise MediaWorkerError("the media backend closed")
        except BaseException:
            await self._close_room(room)
            raise
        if self._keep_spare and self._spare is None:
            # After the room's start, so that a cold start does not compete with the spare's.
            spare = await spawn_worker()
            if self._closed or self._spare is not None:
                await stop_worker(spare, self._timeouts.close_s)
            else:
                self._spare = spare
        return room

    async def aclose(self) -> None:
        """Close every room (in parallel) and the spare worker; idempotent."""
        self._closed = True
        spare, self._spare = self._spare, None
        async with asyncio.TaskGroup() as tg:
            for room in list(self._rooms):
                tg.create_task(self._close_room(room), name=f"close-room-{room.room_id}")
            if spare is not None:
                tg.create_task(stop_worker(spare, self._timeouts.close_s), name="close-spare")

    async def _close_room(self, room: WorkerRoom) -> None:
        try:
            await room.aclose()
        finally:
            self._rooms.discard(room)


class WorkerRoom:
    """Implements :class:`media.api.MediaRoom` by calling a worker process's :class:`SfuRoom`.

    Owns the worker process and the task reading its output. Replies are matched to calls by
    request id; events are handed to ``emit`` in the order the worker wrote them. Pending calls
    are bounded by their callers: signaling awaits one call per participant at a time.
    """

    def __init__(
        self,
        room_id: str,
        process: asyncio.subprocess.Process,
        *,
        emit: EmitEvent,
        timeouts: WorkerTimeouts,
        on_audio: OnAudio | None = None,
    ) -> None:
        self.room_id = room_id
        self._process = process
        self._emit = emit
        self._on_audio = on_audio
        self._timeouts = timeouts
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._request_ids = itertools.count(1)
        self._peers: set[str] = set()  # added and not removed: who fails if the worker dies
        self._broken: str | None = None  # why calls are refused (worker dead or being killed)
        self._closing = False
        self._close_lock = asyncio.Lock()
        self._reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"media-worker-{room_id}"
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def start(self, settings: MediaSettings) -> None:
        level = logging.getLogger("media").getEffectiveLevel()
        await self._call(Init(self.room_id, settings, level), self._timeouts.start_s)

    # -- MediaRoom -------------------------------------------------------------------------
    async def add_peer(self, peer_id: str, publish: Sequence[Kind] = ()) -> None:
        await self._call(AddPeer(peer_id, tuple(publish)))
        self._peers.add(peer_id)

    async def remove_peer(self, peer_id: str) -> None:
        self._peers.discard(peer_id)
        try:
            await self._call(RemovePeer(peer_id))
        except MediaWorkerError:
            pass  # the worker is gone, and the peer with it: removing it has succeeded

    async def publish(
        self, peer_id: str, kinds: Sequence[Kind], source: TrackSource | None = None
    ) -> None:
        await self._call(Publish(peer_id, tuple(kinds), source))

    async def unpublish(self, peer_id: str, track_id: str) -> None:
        await self._call(Unpublish(peer_id, track_id))

    async def answer(self, peer_id: str, sdp: str, revision: int) -> None:
        await self._call(Answer(peer_id, sdp, revision))

    async def hold_audio(self, subscriber_id: str, publisher_ids: Collection[str]) -> None:
        await self._call(HoldAudio(subscriber_id, tuple(sorted(publisher_ids))))

    async def stats(self) -> Mapping[str, Any]:
        """The worker room's :meth:`media.sfu.SfuRoom.stats`."""
        stats = (await self._call(GetStats())).stats
        return {} if stats is None else stats

    async def aclose(self) -> None:
        """Close the room: ask the worker, then SIGTERM, then SIGKILL; idempotent."""
        async with self._close_lock:
            if self._closing and self._reader.done():
                return
            self._closing = True
            try:
                if self._broken is None:
                    try:
                        await self._call(Close(), self._timeouts.close_s)
                    except MediaError as exc:
                        log.warning(
                            "media worker of room %s: no clean close: %s", self.room_id, exc
                        )
            finally:
                await stop_worker(self._process, self._timeouts.close_s)
                await self._reader

    # -- calls -----------------------------------------------------------------------------
    async def _call(self, command: Command, timeout_s: float | None = None) -> Reply:
        if self._broken is not None:
            raise MediaWorkerError(self._broken)
        stdin = self._process.stdin
        assert stdin is not None
        request_id = next(self._request_ids)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            async with asyncio.timeout(self._timeouts.call_s if timeout_s is None else timeout_s):
                stdin.write(encode_request(Request(request_id, command)))
                try:
                    await stdin.drain()
                except ConnectionError:
                    pass  # the worker is gone: the reader fails ``future``, with the reason
                reply = await future
        except TimeoutError:
            reason = f"no reply to {type(command).__name__} in time"
            self._abandon(reason)
            raise MediaWorkerError(reason) from None
        finally:
            del self._pending[request_id]
        if reply.error is not None:
            raise reply.error.to_exception()
        return reply

    def _abandon(self, reason: str) -> None:
        """Treat the worker as dead from now on; the reader then cleans up after it."""
        if self._broken is None:
            self._broken = reason
            log.error(
                "media worker of room %s (pid %d): %s; killing it", self.room_id, self.pid, reason
            )
        if self._process.returncode is None:
            self._process.kill()

    # -- output ----------------------------------------------------------------------------
    async def _read(self) -> None:
        """Own the worker's stdout until it ends, then reap the process and fail its room."""
        stdout = self._process.stdout
        assert stdout is not None
        while True:
            try:
                raw = await receive_frame(stdout, max_json_bytes=MAX_FRAME_BYTES)
                if raw is None:
                    break
                message = decode_worker_message(*raw)
            except WireFormatError as exc:
                self._abandon(f"it broke the wire protocol: {exc}")
                break
            if isinstance(message, Reply):
                future = self._pending.get(message.request_id)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            if isinstance(message, SpeakerAudio):
                if self._on_audio is not None:
                    self._on_audio(dataclasses.replace(message, room_id=self.room_id))
                continue
            try:
                self._emit(message)
            except Exception:  # boundary: a failing listener must not stop the room's events
                log.exception("media event listener failed on %s", type(message).__name__)
        returncode = await stop_worker(self._process, self._timeouts.close_s)
        self._on_exit(returncode)

    def _on_exit(self, returncode: int) -> None:
        reason = self._broken or f"the media worker exited with status {returncode}"
        self._broken = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(MediaWorkerError(reason))
        if self._closing:
            return
        failed, self._peers = sorted(self._peers), set()
        log.error(
            "media worker of room %s (pid %d) is gone (%s); failing its %d peer(s)",
            self.room_id,
            self.pid,
            reason,
            len(failed),
        )
        for peer_id in failed:
            try:
                self._emit(PeerFailed(peer_id, reason))
            except Exception:
                log.exception("media event listener failed on PeerFailed")


# -- processes -----------------------------------------------------------------------------------
async def spawn_worker() -> asyncio.subprocess.Process:
    """Start ``python -m media.worker``; it waits for :class:`media.wire.Init` on stdin."""
    return await processes.spawn_worker(WORKER_MODULE)

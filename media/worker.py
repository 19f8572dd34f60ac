"""A media worker process: one room's :class:`media.sfu.SfuRoom`, driven over stdin/stdout.

Started by :mod:`media.process` as ``python -m media.worker``. stdin carries
:class:`media.wire.Request`s, the first of them :class:`media.wire.Init`; stdout carries replies
and the room's events (:mod:`media.wire`), in the order they happen; stderr carries logs. The
worker closes its room and exits after :class:`media.wire.Close`, or when stdin ends (the parent
is gone), so it never outlives the server for long.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Literal

from interpret.framing import WireFormatError, receive_frame
from interpret.processes import claim_stdout

from . import hooks
from .api import MediaEvent, MediaSettings, PublishAnswer
from .errors import MediaError
from .sfu import SfuRoom
from .wire import (
    MAX_FRAME_BYTES,
    AddPeer,
    Answer,
    Close,
    ErrorInfo,
    GetStats,
    HoldAudio,
    Init,
    Publish,
    RemovePeer,
    Reply,
    Request,
    Unpublish,
    WorkerMessage,
    decode_request,
    encode_worker_message,
)

log = logging.getLogger(__name__)

#: Bytes written to stdout that the parent has not read yet before the worker gives up on it.
#: Normally ~0: the parent reads continuously. Overflow policy: close the room and exit.
MAX_UNSENT_BYTES = 8 * 1024 * 1024

EXIT_OK = 0
EXIT_BAD_REQUEST = 2
EXIT_PARENT_STUCK = 3


class WorkerSession:
    """Serves requests for one room until ``Close``, end of input, or a stuck parent."""

    def __init__(self, room_id: str, settings: MediaSettings, out: asyncio.StreamWriter) -> None:
        self._out = out
        on_audio = self.send if settings.audio_tap else None  # to the parent, for captions
        self._room = SfuRoom(room_id, settings=settings, emit=self._emit, on_audio=on_audio)
        self._stuck = asyncio.Event()
        self._commands: set[asyncio.Task[None]] = set()

    def send(self, message: WorkerMessage) -> None:
        """Write one message now; order on stdout is the order of the calls."""
        if self._stuck.is_set():
            return
        # No drain(): events are emitted from synchronous aiortc callbacks. The transport's
        # buffer is the queue, and MAX_UNSENT_BYTES bounds it.
        self._out.write(encode_worker_message(message))
        if self._out.transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            log.error("parent is not reading our output; closing the room")
            self._stuck.set()

    def _emit(self, event: MediaEvent) -> None:
        assert not isinstance(event, PublishAnswer), "the aiortc SFU's publishers never offer"
        self.send(event)

    async def run(self, requests: asyncio.StreamReader) -> int:
        """Serve until the end; returns the process exit status."""
        async with asyncio.TaskGroup() as tg:
            serving = tg.create_task(self._serve(requests, tg), name="worker-serve")
            stuck = tg.create_task(self._stuck.wait(), name="worker-stuck")
            await asyncio.wait({serving, stuck}, return_when=asyncio.FIRST_COMPLETED)
            serving.cancel()
            stuck.cancel()
            # Requests still running would race the room's teardown; their callers get a
            # MediaWorkerError when this process exits instead of a reply.
            for command in list(self._commands):
                command.cancel()
            await self._room.aclose()
        if self._stuck.is_set():
            return EXIT_PARENT_STUCK
        outcome = serving.result()
        if isinstance(outcome, int):
            self.send(Reply(outcome))  # the reply to Close
            return EXIT_OK
        return EXIT_BAD_REQUEST if outcome == "bad" else EXIT_OK

    async def _serve(
        self, requests: asyncio.StreamReader, tg: asyncio.TaskGroup
    ) -> int | Literal["eof", "bad"]:
        """Read requests; returns Close's request id, or why input stopped."""
        while True:
            try:
                raw = await receive_frame(requests, max_json_bytes=MAX_FRAME_BYTES)
                if raw is None:
                    log.info("input ended; the parent is gone")
                    return "eof"
                request = decode_request(*raw)
            except WireFormatError as exc:
                log.error("bad request from the parent: %s", exc)
                return "bad"
            if isinstance(request.command, Close):
                return request.request_id
            task = tg.create_task(self._execute(request), name=f"request-{request.request_id}")
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)

    async def _execute(self, request: Request) -> None:
        room, c = self._room, request.command
        stats = None
        try:
            match c:
                case AddPeer():
                    await room.add_peer(c.peer_id, c.publish)
                case RemovePeer():
                    await room.remove_peer(c.peer_id)
                case Publish():
                    await room.publish(c.peer_id, c.kinds, c.source)
                case Unpublish():
                    await room.unpublish(c.peer_id, c.track_id)
                case Answer():
                    await room.answer(c.peer_id, c.sdp, c.revision)
                case HoldAudio():
                    await room.hold_audio(c.subscriber_id, c.publisher_ids)
                case GetStats():
                    stats = await room.stats()
                case Init() | Close():
                    raise MediaError(f"{type(c).__name__} is not allowed here")
        except MediaError as exc:
            self.send(Reply(request.request_id, ErrorInfo.from_exception(exc)))
            return
        except Exception as exc:  # boundary: a bug in the room fails this request, not the room
            log.exception("request %s failed", type(c).__name__)
            self.send(Reply(request.request_id, ErrorInfo.from_exception(exc)))
            return
        self.send(Reply(request.request_id, stats=stats))


async def _stdio() -> tuple[asyncio.StreamReader, asyncio.BaseTransport, asyncio.StreamWriter]:
    """Async streams on stdin and on the original stdout; fd 1 then points at stderr, so that a
    stray ``print`` in some library lands in the logs instead of corrupting the wire."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    stdin, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    wire = os.fdopen(claim_stdout(), "wb", buffering=0)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, wire)
    return reader, stdin, asyncio.StreamWriter(transport, protocol, reader, loop)


def _configure_logging(room_id: str, level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format=f"media-worker room={room_id} pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )
    # as in server.app: aiortc/aioice log every packet at debug
    for noisy in ("aiortc", "aioice"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


async def serve_stdio() -> int:
    """Run one worker on this process's stdin/stdout; returns the exit status."""
    requests, stdin, out = await _stdio()
    status = EXIT_BAD_REQUEST
    try:
        try:
            raw = await receive_frame(requests, max_json_bytes=MAX_FRAME_BYTES)
            if raw is None:
                return EXIT_OK  # a spare worker that was never used
            first = decode_request(*raw)
        except WireFormatError as exc:
            log.error("media worker: bad first request: %s", exc)
            return EXIT_BAD_REQUEST
        if not isinstance(first.command, Init):
            log.error("media worker: the first request must be init")
            return EXIT_BAD_REQUEST
        init = first.command
        _configure_logging(init.room_id, init.log_level)
        hooks.restrict_host_addresses(init.settings.ice_host_addresses)
        hooks.use_fast_sender_clock()
        session = WorkerSession(init.room_id, init.settings, out)
        session.send(Reply(first.request_id))
        status = await session.run(requests)
        if status != EXIT_PARENT_STUCK:
            await out.drain()
        return status
    finally:
        stdin.close()
        if status == EXIT_PARENT_STUCK:
            out.transport.abort()
        else:
            out.close()


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the server then shuts down in its
    # own order and closes this room. SIGTERM keeps its default (exit now).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    status = asyncio.run(serve_stdio())
    # The room is closed and stdout flushed: skip the interpreter's teardown of numpy, av and
    # aiortc (~100 ms, more on a busy machine), as multiprocessing's children do.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()

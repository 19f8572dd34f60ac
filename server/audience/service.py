"""The audience's async shell: the viewer socket (``/live/<room>/audience``), the translation
runner, the per-language documents over HTTP and the export when the room closes.

Viewers write over a small WebSocket (the server's HTTP side, websockets' ``process_request``,
answers GET only), and read cacheable documents: ``/live/<room>/questions.<lang>.json`` and
``/live/<room>/polls.<lang>.json`` (``Cache-Control: public, max-age=1``, an ``ETag``, 304 on
``If-None-Match``), rendered at most once a second per language however many viewers ask.

Queues and their policies:

* translation jobs: bounded (``translate_queue_max``); **shed**: a job that finds it full is
  not queued, its item shows in the original (``untranslated``) and is asked again when a
  moderator approves it;
* a moderator's queue view: **latest state**: a change marks it stale; the moderator's own
  pusher sends the newest view, at most every ``PUSH_INTERVAL_S``;
* a viewer's answers: one per message it sent, sent before its next message is read;
* pushes to a viewer (``stage_invite``, ``stage_ended``): one task per push, bounded by
  ``PUSH_TIMEOUT_S`` (a viewer that does not read loses the push, never slows the sender).

In a cluster (PROTOCOL.md "Clusters"), a room's audience is on the room's node only: a socket
that reaches another node is answered ``redirect`` with the room's node's audience socket
(:class:`AudienceDirectory`), and ``welcome`` lists every live node's audience socket of the
room (where a page reconnects when its node dies). The board (items, votes, bans, polls, the
moderator key) is kept in Redis at most once a ``SNAPSHOT_INTERVAL_S`` while it changes
(:class:`Snapshots`), and restored by the node that takes the room over.

On stage (PROTOCOL.md "Audience: on stage"): the invitations are :mod:`.stage`'s; a pass is
redeemed by the room's admission (:meth:`AudienceService.redeem_stage_pass`), and a dismissed
participant is taken out of the room through :class:`StageDoors` (the membership).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from interpret.frames import Translated, Translation

from ..auth import AuthError, Grant
from ..web import text_response
from . import wire
from .board import AudienceBoard, BoardLimits
from .cluster import AudienceDirectory, Snapshots, decode_snapshot, encode_snapshot
from .export import export_csv, export_json, export_records
from .polls import PollBook
from .stage import Invitation, StageBook, StageLimits
from .text import AudienceError

if TYPE_CHECKING:
    from ..auth import TokenVerifier

log = structlog.get_logger(__name__)

#: translate (room, text, source, targets) by the speech worker, the room's glossary applied
TranslateFor = Callable[[str, str, str, tuple[str, ...]], Awaitable[Mapping[str, Translation]]]
#: whether a request for a room's documents may read them (the watch page's rule)
MayWatch = Callable[[str, Headers], bool]

PUSH_INTERVAL_S = 0.25
#: a push to a viewer that is not sent by then is dropped (and its socket closed)
PUSH_TIMEOUT_S = 5.0
#: how often invitations and passes are checked for expiry
STAGE_TICK_S = 1.0
#: the room socket of a participant whose time on stage ended (PROTOCOL.md "Close codes")
CLOSE_STAGE_ENDED = 4004
#: how long a stage seat's credentials (e.g. TURN) may last at most
STAGE_SEAT_TTL_S = 3600.0
HELLO_TIMEOUT_S = 10.0
#: messages a socket may send a second (bursts up to twice that)
SOCKET_MESSAGES_PER_S = 20.0
CLOSE_NO_ROOM = 4404
CLOSE_FORBIDDEN = 4403
#: the room's audience is on another node of the cluster (after ``redirect``)
CLOSE_MOVED = 4005
#: how often a changed board is handed to the cluster's snapshots (which write it with their
#: next heartbeat): a board is serialized at most this often, however busy
SNAPSHOT_INTERVAL_S = 1.0
_DOC = re.compile(r"^/live/([A-Za-z0-9_-]{1,64})/(questions|polls)\.([a-z]{2,3})\.json$")
_SOCKET = re.compile(r"^/live/([A-Za-z0-9_-]{1,64})/audience$")


@dataclass(frozen=True, slots=True)
class AudienceConfig:
    languages: tuple[str, ...]
    pivot: str
    limits: BoardLimits
    document_max_age_s: int = 1
    translate_queue_max: int = 256
    translate_timeout_s: float = 10.0
    stage: StageLimits = field(default_factory=StageLimits)


class StageDoors(Protocol):
    """What the stage needs of the membership (:class:`server.membership.Membership`)."""

    async def expel(self, room: str, participant_id: str, *, close_code: int, reason: str) -> None:
        """Take a participant out of the room (closed with ``close_code``)."""
        ...


@dataclass(slots=True)
class _Rendered:
    version: int
    at: float
    body: bytes
    etag: str


@dataclass(slots=True)
class RoomAudience:
    name: str
    board: AudienceBoard
    polls: PollBook
    stage: StageBook
    moderator_key: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    #: the keys of the nodes this board lived on before (a cluster): their links moderate too
    former_keys: tuple[str, ...] = ()
    #: moderators' "stale" flags, by connection
    moderators: dict[int, tuple[str, asyncio.Event]] = field(default_factory=dict)
    sockets: set[ServerConnection] = field(default_factory=set)
    #: the open sockets of each viewer id (where its stage invitations are pushed)
    viewers: dict[str, set[ServerConnection]] = field(default_factory=dict)
    rendered: dict[tuple[str, str], _Rendered] = field(default_factory=dict)

    def changed(self) -> None:
        for _, stale in self.moderators.values():
            stale.set()


@dataclass(frozen=True, slots=True)
class _Job:
    room: str
    kind: str  # "item" | "poll"
    ref: str
    texts: tuple[str, ...]
    source: str
    targets: tuple[str, ...]


class AudienceService:
    """Every live room's audience (created when the room opens, exported when it closes)."""

    def __init__(
        self,
        config: AudienceConfig,
        *,
        translate: TranslateFor | None,
        may_watch: MayWatch,
        verifier: TokenVerifier | None,
        export: Callable[[str, str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.rooms: dict[str, RoomAudience] = {}
        self._translate = translate
        self._may_watch = may_watch
        self._verifier = verifier
        self._export = export
        self._clock = clock
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(config.translate_queue_max)
        self._runner: asyncio.Task[None] | None = None
        #: (text, target) pairs sent to the speech worker: grows with languages × texts
        self.translate_calls = 0
        self.shed_jobs = 0
        self._busy = 0
        #: refused messages by code (for /metrics)
        self.refused: collections.Counter[str] = collections.Counter()
        #: (room, item, lang) queued or being translated: never asked twice
        self._inflight: set[tuple[str, str, str]] = set()
        #: closings of the sockets of rooms that ended, and pushes to viewers (awaited by
        #: :meth:`aclose`)
        self._closing: set[asyncio.Task[None]] = set()
        self._stage_clock: asyncio.Task[None] | None = None
        #: takes dismissed participants out of their room (set by the composition root)
        self.stage_doors: StageDoors | None = None
        #: where rooms that are not here live (a cluster; set by the composition root)
        self.directory: AudienceDirectory | None = None
        #: where boards outlive their node (a cluster; set by the composition root)
        self.snapshots: Snapshots | None = None
        self._snapshotter: asyncio.Task[None] | None = None
        #: room -> the (board, polls) versions last handed to the snapshots
        self._snapshotted: dict[str, tuple[int, int]] = {}
        #: rooms whose snapshot was looked for since they opened here
        self._restored: set[str] = set()

    @property
    def pending_translations(self) -> int:
        """Translation jobs queued or running."""
        return self._jobs.qsize() + self._busy

    # -- room lifecycle (signaling hooks) --------------------------------------------------------
    def room_for(self, name: str) -> RoomAudience:
        room = self.rooms.get(name)
        if room is None:
            board = AudienceBoard(
                languages=self.config.languages, pivot=self.config.pivot, limits=self.config.limits
            )
            stage = StageBook(self.config.stage)
            room = self.rooms[name] = RoomAudience(name, board, PollBook(), stage)
        return room

    def on_joined(self, name: str, role: str) -> dict[str, str]:
        """A participant joins ``name`` (its board exists from now on): the fields their
        ``joined`` gets: a host's moderation link (PROTOCOL.md "Audience")."""
        self.room_for(name)
        return {"moderate_url": self.moderate_url(name)} if role == "host" else {}

    def moderate_url(self, name: str) -> str:
        return f"/moderate.html?room={name}#key={self.room_for(name).moderator_key}"

    def room_closed(self, name: str) -> None:
        """The room ended: its board is exported (when kept) and dropped; sockets closed."""
        room = self.rooms.pop(name, None)
        self._restored.discard(name)
        self._snapshotted.pop(name, None)
        if self.snapshots is not None:  # the meeting is over: its board with it
            self.snapshots.save(name, "audience", None)
        if room is None:
            return
        if self._export is not None and (room.board.items or room.polls.polls):
            records = export_records(name, room.board, room.polls)
            self._export(name, export_json(records), export_csv(records))
        loop = asyncio.get_running_loop()
        for ws in list(room.sockets):
            task = loop.create_task(ws.close(1000, "room_closed"), name=f"audience-close-{name}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._runner is None:
            self._runner = loop.create_task(self._run_translations(), name="audience-translations")
        if self._stage_clock is None:
            self._stage_clock = loop.create_task(self._run_stage_clock(), name="audience-stage")
        if self._snapshotter is None and self.snapshots is not None:
            self._snapshotter = loop.create_task(self._run_snapshots(), name="audience-snapshots")

    async def aclose(self) -> None:
        for task in (self._runner, self._stage_clock, self._snapshotter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = self._stage_clock = self._snapshotter = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # -- snapshots (a cluster) -------------------------------------------------------------------
    async def _run_snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            try:
                self.snapshot_changed()
            except Exception:  # a boundary: the next tick tries again
                log.exception("audience snapshot failed")

    def snapshot_changed(self) -> None:
        """Hand every board that changed since its last snapshot to the snapshots."""
        if self.snapshots is None:
            return
        for name, room in self.rooms.items():
            versions = (room.board.version, room.polls.version)
            empty = not (room.board.items or room.polls.polls)
            if empty or self._snapshotted.get(name) == versions:
                continue
            self._snapshotted[name] = versions
            keys = (room.moderator_key, *room.former_keys)
            value = encode_snapshot(keys, room.board, room.polls)
            self.snapshots.save(name, "audience", value)

    async def restore(self, name: str) -> None:
        """The room's first joiner here: the board its previous node kept (the room was taken
        over from a dead node) is restored, if nothing was asked here meanwhile."""
        if self.snapshots is None or name in self._restored or name not in self.rooms:
            return
        self._restored.add(name)
        value = await self.snapshots.load(name, "audience")
        room = self.rooms.get(name)
        if not value or room is None:
            return
        if room.board.items or room.polls.polls:  # asked here meanwhile: this board stands
            log.warning("audience snapshot not restored: the board changed here", room=name)
            return
        c = self.config
        try:
            keys, board, polls = decode_snapshot(
                value, languages=c.languages, pivot=c.pivot, limits=c.limits
            )
        except (ValueError, KeyError, TypeError) as exc:  # another version's: start empty
            log.warning("audience snapshot unreadable", room=name, error=type(exc).__name__)
            return
        room.board, room.polls = board, polls
        room.former_keys = tuple(k for k in keys if k != room.moderator_key)
        room.rendered.clear()
        room.changed()
        log.info("audience restored", room=name, items=len(board.items), polls=len(polls.polls))

    # -- HTTP ------------------------------------------------------------------------------------
    @staticmethod
    def is_socket_path(path: str) -> bool:
        return _SOCKET.match(path) is not None

    def document_response(self, path: str, headers: Headers) -> Response | None:
        """The response for a document path, or None when ``path`` is not one."""
        match = _DOC.match(path)
        if match is None:
            return None
        name, doc, lang = match.groups()
        room = self.rooms.get(name)
        if room is None or lang not in room.board.languages:
            return text_response(404, "Not Found", "not found\n")
        if not self._may_watch(name, headers):
            return text_response(403, "Forbidden", "a room token is needed to watch\n")
        rendered = self._render(room, doc, lang)
        fields = [
            ("Cache-Control", f"public, max-age={self.config.document_max_age_s}"),
            ("ETag", rendered.etag),
            ("X-Content-Type-Options", "nosniff"),
            ("Access-Control-Allow-Origin", "*"),
        ]
        if headers.get("If-None-Match") == rendered.etag:
            return Response(304, "Not Modified", Headers(fields), b"")
        fields += [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(rendered.body))),
        ]
        return Response(200, "OK", Headers(fields), rendered.body)

    def _render(self, room: RoomAudience, doc: str, lang: str) -> _Rendered:
        """At most one rendering per document and language a ``document_max_age_s``."""
        version = room.board.version if doc == "questions" else room.polls.version
        now = time.monotonic()
        cached = room.rendered.get((doc, lang))
        if cached is not None and (
            cached.version == version or now - cached.at < self.config.document_max_age_s
        ):
            return cached
        data = room.board.document(lang) if doc == "questions" else room.polls.document(lang)
        body = json.dumps({"room": room.name, **data}, ensure_ascii=False).encode()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        rendered = room.rendered[(doc, lang)] = _Rendered(version, now, body, etag)
        return rendered

    # -- the socket ------------------------------------------------------------------------------
    async def handle(self, ws: ServerConnection, address: str) -> None:
        """One viewer's (or moderator's) socket, from ``hello`` to close."""
        path = ws.request.path.split("?", 1)[0] if ws.request is not None else ""
        match = _SOCKET.match(path)
        if match is None or (match.group(1) not in self.rooms and self.directory is None):
            await ws.close(CLOSE_NO_ROOM, "no_room")
            return
        try:
            async with asyncio.timeout(HELLO_TIMEOUT_S):
                hello = wire.parse(await ws.recv())
        except (TimeoutError, AudienceError, ConnectionClosed):
            await ws.close(1008, "hello_required")
            return
        if not isinstance(hello, wire.Hello):
            await ws.close(1008, "hello_required")
            return
        room = self.rooms.get(match.group(1))
        if room is None:
            await self._send_elsewhere(ws, match.group(1))
            return
        name, moderator, authorized = self._identify(room, hello)
        if not authorized and not self._may_watch(room.name, Headers()):
            await ws.close(CLOSE_FORBIDDEN, "token_required")
            return
        room.sockets.add(ws)
        room.viewers.setdefault(hello.viewer_id, set()).add(ws)
        board = room.board
        await ws.send(
            wire.encode(
                "welcome",
                viewer_id=hello.viewer_id,
                name=name,
                role="moderator" if moderator else "viewer",
                languages=list(board.languages),
                pivot=board.pivot,
                **({} if self.directory is None else self.directory.welcome_fields(room.name)),
            )
        )
        try:
            if moderator:
                stale = asyncio.Event()
                room.moderators[id(ws)] = (hello.lang, stale)
                self._translate_pending(room, hello.lang)
                async with asyncio.TaskGroup() as tg:
                    pusher = tg.create_task(self._push_queue(ws, room, hello.lang, stale))
                    try:
                        await self._serve(ws, room, hello, name, address, moderator=True)
                    except ConnectionClosed:
                        pass
                    finally:
                        pusher.cancel()
            else:
                await self._serve(ws, room, hello, name, address, moderator=False)
        except ConnectionClosed:
            pass
        finally:
            room.sockets.discard(ws)
            room.moderators.pop(id(ws), None)
            mine = room.viewers.get(hello.viewer_id)
            if mine is not None:
                mine.discard(ws)
                if not mine:
                    del room.viewers[hello.viewer_id]

    async def _send_elsewhere(self, ws: ServerConnection, name: str) -> None:
        """A room that is not here: ``redirect`` to its node's audience socket (then close
        4005), or close 4404 when no live node holds it."""
        found = None if self.directory is None else await self.directory.elsewhere(name)
        if found is None:
            await ws.close(CLOSE_NO_ROOM, "no_room")
            return
        node, url = found
        with contextlib.suppress(ConnectionClosed):
            await ws.send(wire.encode("redirect", room=name, node=node, url=url))
        await ws.close(CLOSE_MOVED, "redirected")

    def _identify(self, room: RoomAudience, hello: wire.Hello) -> tuple[str | None, bool, bool]:
        """(the token's name, is a moderator, holds a valid room token or the moderator key):
        the room's moderator key or a host token moderates."""
        given = hello.moderator_key
        if given is not None and any(
            hmac.compare_digest(given, key) for key in (room.moderator_key, *room.former_keys)
        ):
            return None, True, True
        if hello.token is None or self._verifier is None:
            return None, False, False
        try:
            grant = self._verifier.verify(hello.token, room.name)
        except AuthError:
            return None, False, False
        return grant.name, grant.role == "host", True

    async def _serve(
        self,
        ws: ServerConnection,
        room: RoomAudience,
        hello: wire.Hello,
        name: str | None,
        address: str,
        *,
        moderator: bool,
    ) -> None:
        allowance, at = 2 * SOCKET_MESSAGES_PER_S, time.monotonic()
        async for raw in ws:
            now = time.monotonic()
            allowance = min(
                2 * SOCKET_MESSAGES_PER_S, allowance + (now - at) * SOCKET_MESSAGES_PER_S
            )
            at = now
            ref = None
            try:
                if allowance < 1:
                    raise AudienceError("rate_limited", "too many messages", retry_after_ms=1000)
                allowance -= 1
                msg = wire.parse(raw)
                ref = msg.type
                if isinstance(msg, wire.StageMessage):
                    reply = await self._apply_stage(room, msg, hello, address, moderator=moderator)
                else:
                    reply = self._apply(room, msg, hello, name, address, moderator=moderator)
            except AudienceError as exc:
                self.refused[exc.code] += 1
                fields: dict[str, Any] = {"code": exc.code, "message": exc.message, "ref": ref}
                if exc.retry_after_ms is not None:
                    fields["retry_after_ms"] = exc.retry_after_ms
                await ws.send(wire.encode("error", **fields))
                continue
            room.changed()
            await ws.send(reply)

    def _apply(
        self,
        room: RoomAudience,
        msg: wire.AudienceMessage,
        hello: wire.Hello,
        name: str | None,
        address: str,
        *,
        moderator: bool,
    ) -> str:
        board, now = room.board, self._clock()
        match msg:
            case wire.Ask(kind=kind, text=text, lang=lang):
                item = board.submit(
                    viewer_id=hello.viewer_id,
                    name=name,
                    address=address,
                    kind=kind,
                    lang=lang or hello.lang,
                    text=text,
                    now=now,
                )
                # the pivot (to group) and the moderators' languages, once each
                wanted = {board.pivot} | {lang for lang, _ in room.moderators.values()}
                self._queue_item(room, item.item_id, tuple(sorted(wanted)))
                return wire.encode("accepted", ref="ask", id=item.item_id)
            case wire.Vote(id=item_id):
                votes = board.vote(hello.viewer_id, item_id)
                return wire.encode("accepted", ref="vote", id=item_id, votes=votes)
            case wire.PollVote(poll_id=poll_id, option=option):
                if board.is_banned(hello.viewer_id, address):
                    raise AudienceError("banned", "a moderator blocked you for this event")
                room.polls.vote(hello.viewer_id, poll_id, option)
                return wire.encode("accepted", ref="poll_vote", id=poll_id)
            case wire.Hello():
                raise AudienceError("bad_state", "hello was sent already")
        if not moderator:
            raise AudienceError("forbidden", f"only a moderator may send {msg.type}")
        match msg:
            case wire.Moderate(id=item_id, action=action):
                group = board.moderate(item_id, action, now)
                if action != "dismiss":
                    for member in group:
                        self._queue_item(room, member.item_id, board.languages)
                return wire.encode("accepted", ref="moderate", id=item_id)
            case wire.Ban(id=item_id):
                board.ban(item_id, now)
                banned = {i.viewer_id for i in board.items.values() if i.banned}
                for invitation in list(room.stage.live.values()):
                    if invitation.viewer_id in banned:
                        self._end_stage(room, room.stage.end(invitation.invite_id, "banned"))
                return wire.encode("accepted", ref="ban", id=item_id)
            case wire.PollCreate(question=question, options=options, lang=lang):
                poll = room.polls.create(lang=lang, question=question, options=options, now=now)
                targets = tuple(x for x in board.languages if x != lang)
                if targets:
                    self._offer(
                        _Job(
                            room.name,
                            "poll",
                            poll.poll_id,
                            (poll.question, *poll.options),
                            lang,
                            targets,
                        )
                    )
                return wire.encode("accepted", ref="poll_create", id=poll.poll_id)
            case wire.PollClose(poll_id=poll_id):
                room.polls.close(poll_id, now)
                return wire.encode("accepted", ref="poll_close", id=poll_id)
            case wire.Export():
                records = export_records(room.name, board, room.polls)
                return wire.encode("export", json=export_json(records), csv=export_csv(records))
        raise AudienceError("bad_message", f"unknown message {msg.type}")

    async def _push_queue(
        self, ws: ServerConnection, room: RoomAudience, lang: str, stale: asyncio.Event
    ) -> None:
        stale.set()
        with contextlib.suppress(ConnectionClosed):
            await self._push_while_open(ws, room, lang, stale)

    async def _push_while_open(
        self, ws: ServerConnection, room: RoomAudience, lang: str, stale: asyncio.Event
    ) -> None:
        while True:
            await stale.wait()
            stale.clear()
            await ws.send(
                wire.encode(
                    "queue",
                    lang=lang,
                    groups=room.board.queue(lang),
                    polls=room.polls.document(lang)["polls"],
                    stage=room.stage.views(self._clock()),
                )
            )
            await asyncio.sleep(PUSH_INTERVAL_S)

    # -- on stage --------------------------------------------------------------------------------
    async def _apply_stage(
        self,
        room: RoomAudience,
        msg: wire.StageMessage,
        hello: wire.Hello,
        address: str,
        *,
        moderator: bool,
    ) -> str:
        """A stage message's answer (PROTOCOL.md "Audience: on stage")."""
        stage, now = room.stage, self._clock()
        room.changed()  # whatever the answer, moderators see the stage as it is now
        match msg:
            case wire.StageAccept(invite_id=invite_id):
                if room.board.is_banned(hello.viewer_id, address):
                    raise AudienceError("banned", "a moderator blocked you for this event")
                invitation = stage.accept(hello.viewer_id, invite_id, now)
                assert invitation.stage_pass is not None and invitation.join_by is not None
                return wire.encode(
                    "accepted",
                    ref=msg.type,
                    id=invite_id,
                    room=room.name,
                    stage_pass=invitation.stage_pass,
                    name=invitation.name,
                    join_within_ms=max(0, round((invitation.join_by - now) * 1000)),
                )
            case wire.StageLeave(invite_id=invite_id):
                await self._expel(room, stage.leave(hello.viewer_id, invite_id, now))
                return wire.encode("accepted", ref=msg.type, id=invite_id)
        if not moderator:
            raise AudienceError("forbidden", f"only a moderator may send {msg.type}")
        match msg:
            case wire.StageInvite(id=item_id):
                item = room.board.items.get(item_id)
                if item is None:
                    raise AudienceError("not_found", f"no item {item_id}")
                if room.board.is_banned(item.viewer_id, item.address):
                    raise AudienceError("banned", "this viewer is banned for this event")
                if not room.viewers.get(item.viewer_id):
                    raise AudienceError("not_connected", "this viewer is not watching now")
                stage.expire(now)
                invitation = stage.invite(
                    viewer_id=item.viewer_id, item_id=item_id, name=item.name, now=now
                )
                self._push_viewer(
                    room,
                    item.viewer_id,
                    wire.encode(
                        "stage_invite",
                        invite_id=invitation.invite_id,
                        item_id=item_id,
                        expires_in_ms=round(self.config.stage.invite_ttl_s * 1000),
                    ),
                )
                log.info("stage invite", room=room.name, invite=invitation.invite_id)
                return wire.encode("accepted", ref=msg.type, id=invitation.invite_id)
            case wire.StageDismiss(invite_id=invite_id):
                invitation = stage.end(invite_id, "dismissed")
                self._end_stage(room, invitation, expel=False)
                await self._expel(room, invitation)
                return wire.encode("accepted", ref=msg.type, id=invite_id)
        raise AudienceError("bad_message", f"unknown message {msg.type}")

    def _end_stage(self, room: RoomAudience, invitation: Invitation, *, expel: bool = True) -> None:
        """Tell the viewer's pages that the invitation or the stage ended; ``expel``: and take
        a participant on stage out of the room (in a task of its own)."""
        reason = room.stage.ended_reason(invitation.invite_id)
        self._push_viewer(
            room,
            invitation.viewer_id,
            wire.encode("stage_ended", invite_id=invitation.invite_id, reason=reason),
        )
        room.changed()
        if expel and invitation.participant_id is not None and self.stage_doors is not None:
            self._own(self._expel(room, invitation), f"audience-stage-expel-{invitation.invite_id}")

    async def _expel(self, room: RoomAudience, invitation: Invitation) -> None:
        pid, invitation.participant_id = invitation.participant_id, None
        if pid is not None and self.stage_doors is not None:
            await self.stage_doors.expel(
                room.name, pid, close_code=CLOSE_STAGE_ENDED, reason="stage_ended"
            )
            log.info("stage ended", room=room.name, invite=invitation.invite_id)

    def _push_viewer(self, room: RoomAudience, viewer_id: str, message: str) -> None:
        for ws in list(room.viewers.get(viewer_id, ())):
            self._own(self._push(ws, message), "audience-push")

    def _own(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _push(ws: ServerConnection, message: str) -> None:
        try:
            async with asyncio.timeout(PUSH_TIMEOUT_S):
                await ws.send(message)
        except TimeoutError:
            await ws.close(1008, "not_reading")
        except ConnectionClosed:
            pass

    async def _run_stage_clock(self) -> None:
        while True:
            await asyncio.sleep(STAGE_TICK_S)
            now = self._clock()
            for room in list(self.rooms.values()):
                if room.stage.live:
                    for invitation in room.stage.expire(now):
                        self._end_stage(room, invitation)

    def redeem_stage_pass(self, room: str, stage_pass: str) -> Grant | None:
        """What a ``join`` with ``stage_pass`` into ``room`` is granted (a participant's seat,
        ``stage:<invite_id>``), or None: no such pass, or it ended or expired."""
        audience = self.rooms.get(room)
        now = self._clock()
        invitation = None if audience is None else audience.stage.redeem(stage_pass, now)
        if audience is None or invitation is None:
            return None
        audience.changed()
        return Grant(
            room=room,
            role="participant",
            name=invitation.name,
            expires_s=now + STAGE_SEAT_TTL_S,
            seat=f"stage:{invitation.invite_id}",
        )

    def stage_joined(self, room: str, invite_id: str, participant_id: str) -> None:
        """The pass's join entered the room as ``participant_id``."""
        audience = self.rooms.get(room)
        if audience is not None and audience.stage.joined(invite_id, participant_id):
            audience.changed()

    def stage_left(self, room: str, participant_id: str) -> None:
        """A participant left the room (it may rejoin with its pass within the join window)."""
        audience = self.rooms.get(room)
        if audience is not None and audience.stage.left(participant_id, self._clock()):
            audience.changed()

    # -- translation -----------------------------------------------------------------------------
    def _translate_pending(self, room: RoomAudience, lang: str) -> None:
        """A moderator reading ``lang`` arrived: what waits gets translated for them."""
        for item in room.board.items.values():
            if item.status == "pending":
                self._queue_item(room, item.item_id, (lang,))

    def _queue_item(self, room: RoomAudience, item_id: str, languages: tuple[str, ...]) -> None:
        item = room.board.items[item_id]
        targets = tuple(
            lang
            for lang in room.board.missing(item_id, languages)
            if (room.name, item_id, lang) not in self._inflight
        )
        job = _Job(room.name, "item", item_id, (item.text,), item.lang, targets)
        if targets and self._offer(job):
            self._inflight.update((room.name, item_id, lang) for lang in targets)

    def _offer(self, job: _Job) -> bool:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            self.shed_jobs += 1
            return False
        return True

    async def _run_translations(self) -> None:
        while True:
            job = await self._jobs.get()
            self._busy = 1
            try:
                await self._translate_job(job)
            except Exception:  # boundary: one failed job must not stop the others
                log.exception("audience translation failed", room=job.room)
            finally:
                self._busy = 0

    async def _translate_job(self, job: _Job) -> None:
        results: list[Mapping[str, Translation]] = []
        reason = "translation is off on this server"
        if self._translate is not None:
            try:
                async with asyncio.timeout(self.config.translate_timeout_s):
                    for text in job.texts:
                        self.translate_calls += len(job.targets)
                        results.append(
                            await self._translate(job.room, text, job.source, job.targets)
                        )
            except TimeoutError:
                reason, results = "translation timed out", []
            except Exception as exc:  # the worker is down or restarting
                log.warning("audience translation unavailable", room=job.room, error=str(exc))
                reason, results = "translation is unavailable just now", []
        if job.kind == "item":
            self._inflight.difference_update((job.room, job.ref, lang) for lang in job.targets)
        room = self.rooms.get(job.room)
        if room is None:
            return
        for lang in job.targets:
            made = [r.get(lang) for r in results]
            texts = [m.text for m in made if isinstance(m, Translated)]
            if job.kind == "item" and texts:
                room.board.translated(job.ref, lang, texts[0], _engine(made[0]))
            elif job.kind == "item":
                why = next(
                    (m.reason for m in made if m is not None and not isinstance(m, Translated)),
                    reason,
                )
                room.board.not_translated(job.ref, lang, why)
            elif len(texts) == len(job.texts):
                room.polls.translated(job.ref, lang, texts[0], tuple(texts[1:]))
        room.changed()


def _engine(made: Translation | None) -> str:
    return made.engine if isinstance(made, Translated) else ""

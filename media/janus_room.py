"""Rooms on a Janus VideoRoom (multistream, Janus ≥ 1.1): ``[media] engine = "janus"``.

Janus terminates every peer connection; Parley only drives it over the JSON API
(:mod:`media.janus_api`). Each Parley room is one Janus room (created private, with its own
secret, destroyed with the room). Each participant has up to two Janus handles:

- a **subscriber** handle: the peer connection the server offers (Janus's offer is relayed
  as :class:`OfferReady`, the client's answer goes back with ``start``), exactly the aiortc
  engine's flow. Its m-lines are listed as subscribe slots; which streams it carries is
  kept in step with the room here (``update`` subscribe/unsubscribe), one offer outstanding
  at a time, changes folded into the next;
- a **publisher** handle, created on the client's first publish offer: Janus's publishers must
  offer, so the client offers a second, send-only peer connection
  (:meth:`JanusRoom.publish_offer` → :class:`PublishAnswer`; PROTOCOL.md "Janus engine").

Keyframes: Janus asks the publisher for one when a subscriber starts and relays subscribers'
PLI/FIR; rooms also have ``fir_freq``. ``hold_audio`` is a subscriber ``configure`` with
``send: false`` per stream. Simulcast: a browser's simulcast offer is accepted by Janus as is
(subscribers get the top layer). Audio taps: ``rtp_forward`` of each published audio stream to a
local UDP port (:mod:`media.rtp_tap`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .api import (
    EmitEvent,
    JanusSettings,
    Kind,
    MediaSettings,
    OfferReady,
    OnAudio,
    PeerFailed,
    PublishAnswer,
    Slot,
    TrackPublished,
    TrackSource,
    TrackUnpublished,
    default_source,
)
from .errors import MediaStateError, SdpError, StaleAnswerError, UnknownPeerError
from .janus_api import VIDEOROOM, JanusConnection, JanusError, JanusHandle, Json, plugin_data
from .rtp_tap import RtpAudioReceiver
from .tap import AudioTap

log = logging.getLogger(__name__)

#: a key frame at least this often from every video publisher (Janus sends a FIR/PLI), seconds
FIR_FREQ_S = 10

StreamKey = tuple[int, str]  # (Janus feed id, the publisher's mid)


@dataclass(eq=False)
class _Publication:
    track_id: str
    kind: Kind
    source: TrackSource
    feed: int
    mid: str
    published: bool = False
    tap: RtpAudioReceiver | None = None
    forwarder_id: int | None = None


@dataclass(eq=False)
class _JanusPeer:
    peer_id: str
    #: (kind, source) the client declared with publish(); offers may carry only these
    allowed: set[tuple[Kind, TrackSource]] = field(default_factory=set)
    publisher: JanusHandle | None = None
    feed: int | None = None
    #: Janus accepted a first offer (later offers renegotiate with ``configure``)
    publishing: bool = False
    #: the client's mid -> publication, on the publish peer connection
    publications: dict[str, _Publication] = field(default_factory=dict)
    subscriber: JanusHandle | None = None
    #: streams the subscriber handle carries at Janus / should carry
    subscribed: set[StreamKey] = field(default_factory=set)
    wanted: set[StreamKey] = field(default_factory=set)
    #: the subscriber m-line (Janus's mid) of each stream it carries
    sub_mids: dict[StreamKey, str] = field(default_factory=dict)
    revision: int = 0
    outstanding: int | None = None
    publish_revision: int = -1
    #: serialises this peer's negotiations with Janus
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    leaving: bool = False


class JanusRoom:
    """Implements :class:`media.api.PublisherOffers` (a :class:`media.api.MediaRoom`) on one
    Janus VideoRoom."""

    def __init__(
        self,
        room_id: str,
        *,
        connection: JanusConnection,
        janus: JanusSettings,
        settings: MediaSettings,
        emit: EmitEvent,
        on_audio: OnAudio | None,
    ) -> None:
        self.room_id = room_id
        self._connection = connection
        self._janus = janus
        self._settings = settings
        self._emit = emit
        self._on_audio = on_audio if settings.audio_tap else None
        self._janus_room = secrets.randbelow(2**52) + 1
        self._secret = secrets.token_hex(16)
        self._control: JanusHandle | None = None
        self._peers: dict[str, _JanusPeer] = {}
        self._by_feed: dict[int, _JanusPeer] = {}
        self._track_ids = itertools.count(1)
        self._audio_held: dict[str, frozenset[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        #: called once by aclose() (the backend forgets the room)
        self.on_closed: Callable[[], object] | None = None

    @property
    def peer_count(self) -> int:
        return len(self._peers)

    @property
    def stream_count(self) -> int:
        return sum(
            1 for p in self._peers.values() for pub in p.publications.values() if pub.published
        )

    async def create(self) -> None:
        """Create the Janus room (private, with its own secret); called once by the backend."""
        self._control = await self._connection.attach(VIDEOROOM, lambda _event: None)
        await self._control.message(
            {
                "request": "create",
                "room": self._janus_room,
                "admin_key": self._janus.admin_key,
                "secret": self._secret,
                "permanent": False,
                "is_private": True,
                "publishers": 100,
                "audiocodec": "opus",
                "videocodec": "vp8",
                "fir_freq": FIR_FREQ_S,
                "notify_joining": False,
                "description": f"parley {self.room_id}",
            }
        )

    # -- MediaRoom -------------------------------------------------------------------------
    async def add_peer(self, peer_id: str, publish: Sequence[Kind] = ()) -> None:
        if peer_id in self._peers:
            raise MediaStateError(f"peer {peer_id} already in room")
        peer = _JanusPeer(peer_id)
        peer.allowed.update((kind, default_source(kind)) for kind in publish)
        self._peers[peer_id] = peer
        peer.wanted = {
            (p.feed, p.mid)
            for other in self._peers.values()
            if other is not peer
            for p in other.publications.values()
            if p.published
        }
        if peer.wanted:
            self._spawn(self._negotiate(peer), f"janus-negotiate-{peer_id}")

    async def remove_peer(self, peer_id: str) -> None:
        peer = self._peers.pop(peer_id, None)
        self._audio_held.pop(peer_id, None)
        if peer is None:
            return
        peer.leaving = True
        for publication in list(peer.publications.values()):
            await self._end_publication(peer, publication)
        if peer.feed is not None:
            self._by_feed.pop(peer.feed, None)
        async with peer.lock:
            for handle in (peer.publisher, peer.subscriber):
                if handle is not None:
                    await handle.detach()

    async def publish(
        self, peer_id: str, kinds: Sequence[Kind], source: TrackSource | None = None
    ) -> None:
        peer = self._peer(peer_id)
        wanted = [(kind, source or default_source(kind)) for kind in kinds]
        live = {(p.kind, p.source) for p in peer.publications.values()}
        already = live & set(wanted)
        if already or len(set(wanted)) != len(wanted):
            shown = sorted(f"{kind} ({src})" for kind, src in already or set(wanted))
            raise MediaStateError(f"already publishing {', '.join(shown)}")
        peer.allowed.update(wanted)

    async def publish_offer(
        self, peer_id: str, sdp: str, revision: int, sources: Mapping[str, TrackSource]
    ) -> None:
        peer = self._peer(peer_id)
        if revision <= peer.publish_revision:
            raise StaleAnswerError(
                f"publish offer {revision} is not newer than {peer.publish_revision}"
            )
        peer.publish_revision = revision
        async with peer.lock:
            try:
                reply = await self._offer_to_janus(peer, sdp, sources)
            except JanusError as exc:
                raise SdpError(f"Janus refused the publish offer: {exc}") from exc
        jsep = reply.get("jsep") or {}
        if jsep.get("type") != "answer":
            raise SdpError("Janus sent no answer to the publish offer")
        # publications first: Janus's "media" event that announces them may follow quickly
        await self._sync_publications(peer, plugin_data(reply).get("streams", []), sources)
        self._emit(PublishAnswer(peer_id, str(jsep["sdp"]), revision))

    async def unpublish(self, peer_id: str, track_id: str) -> None:
        peer = self._peer(peer_id)
        for publication in peer.publications.values():
            if publication.track_id == track_id:
                await self._end_publication(peer, publication)
                return
        raise MediaStateError(f"{track_id} is not a track of {peer_id}")

    async def answer(self, peer_id: str, sdp: str, revision: int) -> None:
        peer = self._peer(peer_id)
        if peer.outstanding is None or revision != peer.outstanding:
            raise StaleAnswerError(f"revision {revision} is not the outstanding offer")
        async with peer.lock:
            assert peer.subscriber is not None
            try:
                await peer.subscriber.message({"request": "start"}, {"type": "answer", "sdp": sdp})
            except JanusError as exc:
                raise SdpError(f"Janus refused the answer: {exc}") from exc
            peer.outstanding = None
        await self._apply_holds(peer)
        self._spawn(self._negotiate(peer), f"janus-negotiate-{peer_id}")

    async def hold_audio(self, subscriber_id: str, publisher_ids: Collection[str]) -> None:
        peer = self._peer(subscriber_id)
        held = frozenset(publisher_ids)
        if held:
            self._audio_held[subscriber_id] = held
        else:
            self._audio_held.pop(subscriber_id, None)
        await self._apply_holds(peer)

    async def stats(self) -> dict[str, Any]:
        """Counters (no media content): peers and publications; Janus keeps the packet counts
        (its Admin API), so ``forwarded`` is not reported by this engine."""
        return {
            "engine": "janus",
            "peers": len(self._peers),
            "publications": {
                p.track_id: {
                    "kind": p.kind,
                    "publisher": peer.peer_id,
                    "published": p.published,
                    **(
                        {"tap": {**p.tap.tap.stats(), "packets_in": p.tap.packets_in}}
                        if p.tap is not None
                        else {}
                    ),
                }
                for peer in self._peers.values()
                for p in peer.publications.values()
            },
        }

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for peer_id in list(self._peers):
            await self.remove_peer(peer_id)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._control is not None:
            try:
                await self._control.message(
                    {"request": "destroy", "room": self._janus_room, "secret": self._secret}
                )
            except JanusError as exc:
                log.warning("destroying Janus room of %s failed: %s", self.room_id, exc)
            await self._control.detach()
        if self.on_closed is not None:
            self.on_closed()

    def fail_all(self, reason: str) -> None:
        """The engine is gone: every peer's media failed."""
        for peer_id in list(self._peers):
            self._emit(PeerFailed(peer_id, reason))

    # -- publishing ------------------------------------------------------------------------
    async def _offer_to_janus(
        self, peer: _JanusPeer, sdp: str, sources: Mapping[str, TrackSource]
    ) -> Json:
        jsep = {"type": "offer", "sdp": sdp}
        descriptions = [{"mid": mid, "description": src} for mid, src in sources.items()]
        if peer.publisher is not None and peer.publishing:
            return await peer.publisher.message(
                {"request": "configure", "descriptions": descriptions}, jsep
            )
        if peer.publisher is None:
            peer.publisher = await self._connection.attach(
                VIDEOROOM, lambda event: self._on_publisher_event(peer, event)
            )
        if peer.feed is None:  # joined once; a refused first offer keeps the seat
            joined = await peer.publisher.message(
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": self._janus_room,
                    "display": peer.peer_id,
                }
            )
            peer.feed = int(plugin_data(joined)["id"])
            self._by_feed[peer.feed] = peer
        reply = await peer.publisher.message(
            {"request": "publish", "descriptions": descriptions}, jsep
        )
        peer.publishing = True
        return reply

    async def _sync_publications(
        self, peer: _JanusPeer, streams: list[Json], sources: Mapping[str, TrackSource]
    ) -> None:
        """Janus's list of the publisher's streams after an offer: new ones become
        publications (announced once media arrives), disabled ones end."""
        assert peer.feed is not None
        for stream in streams:
            mid = str(stream.get("mid"))
            kind = stream.get("type")
            if kind not in ("audio", "video"):
                continue
            current = peer.publications.get(mid)
            if stream.get("disabled"):
                if current is not None:
                    await self._end_publication(peer, current)
                continue
            if current is not None:
                continue
            source = sources.get(mid) or default_source(kind)
            if (kind, source) not in peer.allowed:
                log.warning("%s offered %s (%s) without publish", peer.peer_id, kind, source)
                continue
            track_id = f"{peer.peer_id}-{kind}-{next(self._track_ids)}"
            peer.publications[mid] = _Publication(track_id, kind, source, peer.feed, mid)

    def _on_publisher_event(self, peer: _JanusPeer, event: Json) -> None:
        kind = event.get("janus")
        if kind == "media" and event.get("receiving"):
            publication = peer.publications.get(str(event.get("mid")))
            if publication is not None and not publication.published and not peer.leaving:
                self._spawn(self._announce(peer, publication), f"janus-announce-{peer.peer_id}")
        elif kind == "hangup" and not peer.leaving and peer.peer_id in self._peers:
            self._emit(PeerFailed(peer.peer_id, f"publish connection: {event.get('reason')}"))

    async def _announce(self, peer: _JanusPeer, publication: _Publication) -> None:
        publication.published = True
        if publication.kind == "audio" and self._on_audio is not None:
            await self._start_tap(peer, publication)
        self._emit(
            TrackPublished(peer.peer_id, publication.track_id, publication.kind, publication.source)
        )
        key = (publication.feed, publication.mid)
        for other in list(self._peers.values()):
            if other is not peer:
                other.wanted.add(key)
                self._spawn(self._negotiate(other), f"janus-negotiate-{other.peer_id}")

    async def _start_tap(self, peer: _JanusPeer, publication: _Publication) -> None:
        assert self._on_audio is not None and self._control is not None
        tap = AudioTap(
            room_id=self.room_id,
            peer_id=peer.peer_id,
            track_id=publication.track_id,
            on_audio=self._on_audio,
        )
        receiver = RtpAudioReceiver(tap)
        port = await receiver.start(self._janus.tap_host)
        try:
            reply = await self._control.message(
                {
                    "request": "rtp_forward",
                    "room": self._janus_room,
                    "publisher_id": publication.feed,
                    "host": self._janus.tap_host,
                    "streams": [{"mid": publication.mid, "port": port}],
                    "secret": self._secret,
                    "admin_key": self._janus.admin_key,
                }
            )
        except JanusError as exc:  # captions off for this speaker; the call goes on
            log.error("no audio tap for %s: %s", publication.track_id, exc)
            await receiver.aclose()
            return
        forwarders = plugin_data(reply).get("forwarders", [])
        if forwarders:
            publication.forwarder_id = int(forwarders[0]["stream_id"])
        publication.tap = receiver

    async def _end_publication(self, peer: _JanusPeer, publication: _Publication) -> None:
        if peer.publications.get(publication.mid) is not publication:
            return
        del peer.publications[publication.mid]
        key = (publication.feed, publication.mid)
        for other in list(self._peers.values()):
            if key in other.wanted:
                other.wanted.discard(key)
                self._spawn(self._negotiate(other), f"janus-negotiate-{other.peer_id}")
        if publication.forwarder_id is not None and self._control is not None:
            try:
                await self._control.message(
                    {
                        "request": "stop_rtp_forward",
                        "room": self._janus_room,
                        "publisher_id": publication.feed,
                        "stream_id": publication.forwarder_id,
                        "secret": self._secret,
                        "admin_key": self._janus.admin_key,
                    }
                )
            except JanusError as exc:
                log.debug("stop_rtp_forward: %s", exc)
        if publication.tap is not None:
            await publication.tap.aclose()
        if publication.published:
            self._emit(TrackUnpublished(peer.peer_id, publication.track_id))

    # -- subscribing -----------------------------------------------------------------------
    async def _negotiate(self, peer: _JanusPeer) -> None:
        """Bring the subscriber handle in step with ``wanted``: one Janus request, one offer."""
        async with peer.lock:
            target = set(peer.wanted)  # wanted may change while Janus answers
            if peer.leaving or peer.outstanding is not None or target == peer.subscribed:
                return
            subscribe = [{"feed": f, "mid": m} for f, m in sorted(target - peer.subscribed)]
            unsubscribe = [{"feed": f, "mid": m} for f, m in sorted(peer.subscribed - target)]
            if peer.subscriber is None:
                if not subscribe:
                    return
                peer.subscriber = await self._connection.attach(
                    VIDEOROOM, lambda event: self._on_subscriber_event(peer, event)
                )
                reply = await peer.subscriber.message(
                    {
                        "request": "join",
                        "ptype": "subscriber",
                        "room": self._janus_room,
                        "streams": subscribe,
                        "use_msid": True,
                    }
                )
            else:
                body: Json = {"request": "update"}
                if subscribe:
                    body["subscribe"] = subscribe
                if unsubscribe:
                    body["unsubscribe"] = unsubscribe
                try:
                    reply = await peer.subscriber.message(body)
                except JanusError as exc:
                    # e.g. the publisher left first and Janus dropped its streams already
                    log.warning("subscription update for %s: %s", peer.peer_id, exc)
                    peer.subscribed = target
                    return
            peer.subscribed = target
            self._offer(peer, reply)

    def _on_subscriber_event(self, peer: _JanusPeer, event: Json) -> None:
        kind = event.get("janus")
        if kind == "event" and event.get("jsep", {}).get("type") == "offer":
            # Janus renegotiates by itself when a publisher goes away
            self._offer(peer, event)
        elif kind == "hangup" and not peer.leaving and peer.peer_id in self._peers:
            self._emit(PeerFailed(peer.peer_id, f"subscribe connection: {event.get('reason')}"))

    def _offer(self, peer: _JanusPeer, reply: Json) -> None:
        jsep = reply.get("jsep")
        data = plugin_data(reply)
        if "streams" in data:
            peer.sub_mids = {
                (int(s["feed_id"]), str(s["feed_mid"])): str(s["mid"])
                for s in data["streams"]
                if s.get("active", True) and "feed_id" in s and s.get("type") != "data"
            }
        if not jsep or jsep.get("type") != "offer":
            return
        peer.revision += 1
        peer.outstanding = peer.revision
        self._emit(OfferReady(peer.peer_id, str(jsep["sdp"]), peer.revision, self._slots(peer)))

    def _slots(self, peer: _JanusPeer) -> dict[str, Slot]:
        slots: dict[str, Slot] = {}
        for (feed, feed_mid), mid in peer.sub_mids.items():
            publisher = self._by_feed.get(feed)
            publication = publisher.publications.get(feed_mid) if publisher else None
            if publisher is None or publication is None:
                continue
            slots[mid] = Slot(
                "subscribe",
                publication.kind,
                publisher.peer_id,
                publication.track_id,
                publication.source,
            )
        return slots

    async def _apply_holds(self, peer: _JanusPeer) -> None:
        """Audio of held publishers: ``send: false`` on the subscriber's streams."""
        if peer.subscriber is None or peer.outstanding is not None:
            return  # applied once the answer is in (answer() calls this again)
        held = self._audio_held.get(peer.peer_id, frozenset())
        streams = []
        for (feed, feed_mid), mid in peer.sub_mids.items():
            publisher = self._by_feed.get(feed)
            publication = publisher.publications.get(feed_mid) if publisher else None
            if publisher is not None and publication is not None and publication.kind == "audio":
                streams.append({"mid": mid, "send": publisher.peer_id not in held})
        if streams:
            async with peer.lock:
                await peer.subscriber.message({"request": "configure", "streams": streams})

    # -- plumbing --------------------------------------------------------------------------
    def _peer(self, peer_id: str) -> _JanusPeer:
        try:
            return self._peers[peer_id]
        except KeyError:
            raise UnknownPeerError(peer_id) from None

    def _spawn(self, coro: Any, name: str) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Janus task %s failed", task.get_name(), exc_info=task.exception())


@dataclass(frozen=True, slots=True)
class JanusStatus:
    """Janus's answer to ``info``, and this backend's rooms on it."""

    version: str
    rooms: int
    participants: int
    #: published tracks Janus forwards for this backend
    streams: int


class JanusMediaBackend:
    """Implements :class:`media.api.MediaBackend` on one Janus server (one WebSocket, one
    session for every room)."""

    def __init__(
        self, settings: MediaSettings, *, janus: JanusSettings, on_audio: OnAudio | None = None
    ) -> None:
        self._settings = settings
        self._janus = janus
        self._on_audio = on_audio
        self._connection: JanusConnection | None = None
        self._rooms: dict[str, JanusRoom] = {}
        self._emits: dict[str, EmitEvent] = {}
        #: one reconnection at a time (a room opening and the cluster's probe may both find the
        #: connection lost)
        self._connecting = asyncio.Lock()

    async def start(self) -> None:
        connection = JanusConnection(self._janus.url, api_secret=self._janus.api_secret)
        try:
            await connection.open()
        except BaseException:
            await connection.aclose()  # its reader task, if the socket opened
            raise
        connection.on_lost = self._on_lost
        self._connection = connection

    async def status(self, *, timeout_s: float) -> JanusStatus:
        """Ask Janus ``info`` (reconnecting first if it was lost) within ``timeout_s``: its
        version, and what this backend has on it. Raises :class:`JanusError` or ``OSError``
        (or ``TimeoutError``) when Janus does not answer."""
        async with asyncio.timeout(timeout_s):
            connection = await self._connected()
            info = await connection.info(timeout_s=timeout_s)
        if info.get("janus") != "server_info":
            raise JanusError(f"unexpected answer to info: {info.get('janus')}")
        rooms = list(self._rooms.values())
        return JanusStatus(
            version=str(info.get("version_string") or info.get("version") or "?"),
            rooms=len(rooms),
            participants=sum(r.peer_count for r in rooms),
            streams=sum(r.stream_count for r in rooms),
        )

    async def _connected(self) -> JanusConnection:
        """The connection, opened again if it was lost (Janus came back)."""
        async with self._connecting:
            if self._connection is None or self._connection.closed:
                await self.start()
            assert self._connection is not None
            return self._connection

    async def open_room(self, room_id: str, emit: EmitEvent) -> JanusRoom:
        connection = await self._connected()  # first room, or Janus came back after it was lost
        room = JanusRoom(
            room_id,
            connection=connection,
            janus=self._janus,
            settings=self._settings,
            emit=emit,
            on_audio=self._on_audio,
        )
        await room.create()
        self._rooms[room_id] = room
        room.on_closed = lambda: self._rooms.pop(room_id, None)
        return room

    async def aclose(self) -> None:
        for room in list(self._rooms.values()):
            await room.aclose()
        self._rooms.clear()
        if self._connection is not None:
            await self._connection.aclose()

    def _on_lost(self, reason: str) -> None:
        """Janus went away: every peer's media is gone."""
        log.error("lost Janus: %s", reason)
        for room in self._rooms.values():
            room.fail_all(f"media engine lost: {reason}")

"""The seam between signaling and the media plane.

``server/`` talks to a :class:`MediaBackend` and the :class:`MediaRoom`s it opens, and hears back
through :data:`MediaEvent`s. Commands and events are plain data so that a room can live in this
process (:mod:`media.inline`), in a media worker process (:mod:`media.process`), or later on
another engine (e.g. a Janus node) without the signaling side changing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from interpret.frames import AudioChunk

Kind = Literal["audio", "video"]
KINDS: tuple[Kind, ...] = ("audio", "video")
#: what a published track carries: a screen is a second video track beside the camera
TrackSource = Literal["camera", "microphone", "screen"]
TRACK_SOURCES: tuple[TrackSource, ...] = ("camera", "microphone", "screen")


def default_source(kind: Kind) -> TrackSource:
    """The source of a track published without one: the microphone or the camera."""
    return "microphone" if kind == "audio" else "camera"


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server handed to every peer connection (server side and browser)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class JanusSettings:
    """Where the Janus media engine is and the secrets it was configured with (never Janus's
    shipped defaults: the composition root refuses them). Given to
    :class:`media.janus_room.JanusMediaBackend` beside the :class:`MediaSettings` (of which it
    uses ``audio_tap`` only: Janus does ICE, keyframes and queues itself)."""

    #: Janus's WebSocket transport, e.g. ``ws://10.0.0.5:8188``
    url: str
    #: ``general.api_secret`` of janus.jcfg, sent with every request
    api_secret: str
    #: ``general.admin_key`` of janus.plugin.videoroom.jcfg: creating rooms and RTP forwarders
    admin_key: str
    #: the address of this machine that Janus sends the audio taps' RTP to (``rtp_forward``)
    tap_host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """How the media plane behaves; built once from configuration by the composition root."""

    ice_servers: tuple[IceServer, ...] = ()
    #: host candidates ICE announces; empty = every local address except loopback (aioice's rule)
    ice_host_addresses: tuple[str, ...] = ()
    #: at most one upstream keyframe request per this interval, per published video track
    pli_min_interval_s: float = 0.35
    #: per-subscriber queue of encoded frames (video: flush + wait for keyframe when full)
    subscriber_max_frames: int = 64
    #: "inline": rooms live in the signaling process; "process": one media worker per room
    isolation: Literal["inline", "process"] = "inline"
    #: decode each published audio track to 16 kHz chunks for captions (off = never decode);
    #: only backends given an ``on_audio`` callback tap (with ``"process"`` isolation the
    #: worker decodes and sends the chunks to the parent)
    audio_tap: bool = False


@dataclass(frozen=True, slots=True)
class Slot:
    """What one m-line of a participant's peer connection carries."""

    direction: Literal["publish", "subscribe"]
    kind: Kind
    participant_id: str
    track_id: str | None
    source: TrackSource


@dataclass(frozen=True, slots=True)
class OfferReady:
    """An SDP offer for ``peer_id``; the client must answer it with the same ``revision``."""

    peer_id: str
    sdp: str
    revision: int
    slots: Mapping[str, Slot] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrackPublished:
    """Media of ``track_id`` reached the SFU and is forwarded to every other peer."""

    peer_id: str
    track_id: str
    kind: Kind
    source: TrackSource


@dataclass(frozen=True, slots=True)
class TrackUnpublished:
    peer_id: str
    track_id: str


@dataclass(frozen=True, slots=True)
class PeerFailed:
    """The peer connection failed (ICE/DTLS) or closed by itself; the peer should be removed."""

    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PublishAnswer:
    """The engine's answer to a client's offer for its publish peer connection (engines whose
    publishers offer, i.e. Janus: see :class:`PublisherOffers`)."""

    peer_id: str
    sdp: str
    revision: int


MediaEvent = OfferReady | TrackPublished | TrackUnpublished | PeerFailed | PublishAnswer
EmitEvent = Callable[[MediaEvent], None]


@dataclass(frozen=True, slots=True)
class SpeakerAudio:
    """~100 ms of one published audio track, decoded (see :mod:`media.tap`).

    Not a :data:`MediaEvent`: audio flows ten times a second per speaker towards transcription,
    not towards signaling, so it has its own callback (:data:`OnAudio`), given to the backend.
    """

    room_id: str
    peer_id: str
    track_id: str
    chunk: AudioChunk


#: Receives tapped audio on the event loop; must not block (e.g. a bounded queue's ``put``).
OnAudio = Callable[[SpeakerAudio], None]


class MediaRoom(Protocol):
    """One room's media. Every method raises a :class:`media.errors.MediaError` on bad input."""

    async def add_peer(self, peer_id: str, publish: Sequence[Kind] = ()) -> None:
        """Add a peer; ``publish`` adds its publish slots to the first offer (one round trip
        instead of two)."""
        ...

    async def remove_peer(self, peer_id: str) -> None: ...

    async def publish(
        self, peer_id: str, kinds: Sequence[Kind], source: TrackSource | None = None
    ) -> None:
        """Add publish slots for ``kinds`` from ``source`` (None: each kind's default); at most
        one track per (kind, source)."""
        ...

    async def unpublish(self, peer_id: str, track_id: str) -> None: ...

    async def answer(self, peer_id: str, sdp: str, revision: int) -> None: ...

    async def hold_audio(self, subscriber_id: str, publisher_ids: Collection[str]) -> None:
        """Forward no audio of ``publisher_ids`` to ``subscriber_id`` until the next call (which
        replaces the set; empty forwards everything again). Holds apply to tracks published
        later too. Interpretation channels: a listener of a channel hears its interpreter
        instead of the floor."""
        ...

    async def stats(self) -> Mapping[str, Any]:
        """Counters for metrics and benchmarks (never media content)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PublisherOffers(MediaRoom, Protocol):
    """A room on an engine where a publisher's own peer connection makes the offer (Janus).

    The client sends its media on a second peer connection (send-only) and offers it; the room
    answers with :class:`PublishAnswer`. The first peer connection still only receives, with
    the server as the offerer (:class:`OfferReady`). :meth:`MediaRoom.publish` declares which
    (kind, source) the client may offer; an offered track that was not declared is refused.
    """

    async def publish_offer(
        self, peer_id: str, sdp: str, revision: int, sources: Mapping[str, TrackSource]
    ) -> None:
        """The client's offer for its publish peer connection; ``sources`` says what each of
        its ``mid``s carries (camera, microphone or screen)."""
        ...


class MediaBackend(Protocol):
    """Places rooms somewhere and hands back a :class:`MediaRoom` for each."""

    async def start(self) -> None:
        """Get ready to open rooms quickly (e.g. start a spare worker); called once."""
        ...

    async def open_room(self, room_id: str, emit: EmitEvent) -> MediaRoom: ...

    async def aclose(self) -> None: ...

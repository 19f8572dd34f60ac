"""One participant's ``RTCPeerConnection`` and its offer/answer cycle. camelCase stops here.

The server is always the offerer (PROTOCOL.md): at most one offer is outstanding; changes made
while waiting for the answer are folded into the next offer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidStateError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from . import hooks
from .api import EmitEvent, IceServer, Kind, OfferReady, PeerFailed, Slot, TrackSource
from .errors import SdpError, StaleAnswerError
from .forward import EncodedSource, SubscriberTrack

log = logging.getLogger(__name__)

#: Parley forwards Opus and VP8 only (plus VP8's retransmission format).
_WANTED_CODECS = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}


def _codec_preferences(kind: Kind) -> list[RTCRtpCodecCapability]:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for c in caps if c.mimeType in _WANTED_CODECS[kind]]


def rtc_configuration(ice_servers: tuple[IceServer, ...]) -> RTCConfiguration:
    """Always explicit: aiortc would otherwise use Google's public STUN server."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in ice_servers
        ],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


#: how long a renegotiation waits for the first connection to settle
_SETTLE_TIMEOUT_S = 10.0

TrackHandler = Callable[["Peer", RTCRtpTransceiver, MediaStreamTrack], None]


class Peer:
    """A participant's peer connection, its slots and its negotiation state."""

    def __init__(
        self,
        peer_id: str,
        *,
        configuration: RTCConfiguration,
        emit: EmitEvent,
        on_track: TrackHandler,
        subscriber_max_frames: int,
    ) -> None:
        self.peer_id = peer_id
        self.pc = RTCPeerConnection(configuration)
        self._emit = emit
        self._slots: dict[RTCRtpTransceiver, Slot] = {}
        self._revision = 0
        self._awaiting_answer = False
        self._dirty = False
        self._negotiating: asyncio.Task[None] | None = None
        self._closed = False
        self._subscriber_max_frames = subscriber_max_frames
        self._tracks: dict[RTCRtpTransceiver, SubscriberTrack] = {}
        self._idle: dict[str, list[RTCRtpTransceiver]] = {"audio": [], "video": []}
        self._answered = False
        # set once ICE/DTLS have settled (connected, failed or closed)
        self._settled = asyncio.Event()

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            # Synchronous on purpose: aiortc starts the receiver right after this event, and
            # the forwarding hooks must be in place before it does.
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.track is track:
                    on_track(self, transceiver, track)
                    return

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            if self.pc.connectionState in ("connected", "failed", "closed"):
                self._settled.set()
            if self.pc.connectionState == "failed" and not self._closed:
                self._emit(PeerFailed(self.peer_id, "connection failed"))

    # -- slots -------------------------------------------------------------------------------
    def add_publish_slot(self, kind: Kind, source: TrackSource) -> RTCRtpTransceiver:
        transceiver = self.pc.addTransceiver(kind, direction="recvonly")
        transceiver.setCodecPreferences(_codec_preferences(kind))
        self._slots[transceiver] = Slot("publish", kind, self.peer_id, None, source)
        return transceiver

    def slot_of(self, transceiver: RTCRtpTransceiver) -> Slot | None:
        return self._slots.get(transceiver)

    def set_slot_track(self, transceiver: RTCRtpTransceiver, track_id: str) -> None:
        self._slots[transceiver] = dataclasses.replace(self._slots[transceiver], track_id=track_id)

    def add_subscription(
        self,
        source: EncodedSource,
        *,
        kind: Kind,
        publisher_id: str,
        track_id: str,
        track_source: TrackSource,
    ) -> RTCRtpTransceiver:
        """Send ``source`` to this peer, on an idle m-line of the same kind when there is one
        (so the SDP does not grow with every participant who ever came and went)."""
        idle = self._idle[kind]
        if idle:
            transceiver = idle.pop()
            transceiver.direction = "sendonly"
        else:
            track = SubscriberTrack(
                kind, max_frames=self._subscriber_max_frames, subscriber_id=self.peer_id
            )
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(_codec_preferences(kind))
            hooks.on_sender_keyframe_request(transceiver.sender, track.request_keyframe)
            hooks.use_forwarding_send_loop(transceiver.sender)
            self._tracks[transceiver] = track
        self._tracks[transceiver].attach(source)
        # msid = "<publisher participant id> <track id>": browsers group by participant
        hooks.label_sender(transceiver.sender, stream_id=publisher_id, track_id=track_id)
        self._slots[transceiver] = Slot("subscribe", kind, publisher_id, track_id, track_source)
        return transceiver

    def forwarding_totals(self) -> dict[str, dict[str, int]]:
        """Frames, bytes and drops sent to this peer so far, per kind (monotonic: subscriber
        tracks live as long as the peer, reused m-lines included)."""
        totals = {kind: {"frames": 0, "bytes": 0, "dropped": 0} for kind in ("audio", "video")}
        for track in self._tracks.values():
            t = totals[track.kind]
            t["frames"] += track.forwarded
            t["bytes"] += track.forwarded_bytes
            t["dropped"] += track.dropped
        return totals

    def hold(self, transceiver: RTCRtpTransceiver, held: bool) -> None:
        """Stop (or resume) forwarding on a subscription m-line; see SubscriberTrack.held."""
        track = self._tracks.get(transceiver)
        if track is not None:
            track.held = held

    def remove_subscription(self, transceiver: RTCRtpTransceiver) -> None:
        """Stop sending on a subscriber m-line; it is kept for reuse."""
        track = self._tracks.get(transceiver)
        if track is None or transceiver in self._idle[track.kind]:
            return
        track.detach()
        self.deactivate(transceiver)
        self._idle[track.kind].append(transceiver)

    def deactivate(self, transceiver: RTCRtpTransceiver) -> None:
        """Stop using an m-line; the next offer marks it inactive."""
        transceiver.direction = "inactive"
        self._slots.pop(transceiver, None)

    def publish_slot_sources(self) -> set[tuple[Kind, TrackSource]]:
        """(kind, source) of every publish slot in use (waiting for media or publishing)."""
        return {(s.kind, s.source) for s in self._slots.values() if s.direction == "publish"}

    # -- negotiation -------------------------------------------------------------------------
    def request_negotiation(self) -> None:
        """Send a new offer as soon as no other offer is outstanding."""
        self._dirty = True
        if self._closed or self._awaiting_answer:
            return
        if self._negotiating is None or self._negotiating.done():
            self._negotiating = asyncio.get_running_loop().create_task(
                self._send_offers(), name=f"negotiate-{self.peer_id}"
            )

    async def _send_offers(self) -> None:
        if self._answered and not self._settled.is_set():
            # aiortc 1.16 connects in a task started by setRemoteDescription(); a second answer
            # applied while that task still runs makes it index the old description
            # (IndexError in __remoteRtp). Renegotiate once the first connection has settled.
            try:
                await asyncio.wait_for(self._settled.wait(), _SETTLE_TIMEOUT_S)
            except TimeoutError:
                pass
        while self._dirty and not self._awaiting_answer and not self._closed:
            self._dirty = False
            try:
                await self.pc.setLocalDescription(await self.pc.createOffer())
            except InvalidStateError:
                # aiortc closes the connection by itself once the other side has closed DTLS
                # (it left); a renegotiation for someone else's departure then finds it closed
                log.debug("peer %s: connection closed, no offer", self.peer_id)
                return
            if self._closed:
                return
            self._revision += 1
            self._awaiting_answer = True
            slots = {t.mid: s for t, s in self._slots.items() if t.mid is not None}
            self._emit(
                OfferReady(self.peer_id, self.pc.localDescription.sdp, self._revision, slots)
            )

    async def apply_answer(self, sdp: str, revision: int) -> None:
        if not self._awaiting_answer or revision != self._revision:
            raise StaleAnswerError(f"revision {revision} is not the outstanding offer")
        if "m=" not in sdp or not sdp.startswith("v="):
            raise SdpError("not an SDP answer")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises many types for bad SDP; all mean "bad SDP"
            raise SdpError(f"{type(exc).__name__}: {exc}") from exc
        self._awaiting_answer = False
        self._answered = True
        for track in self._tracks.values():
            track.negotiated()
        if self._dirty:
            self.request_negotiation()

    async def aclose(self) -> None:
        """Close the connection (idempotent); awaits any offer being built."""
        if self._closed:
            return
        self._closed = True
        if self._negotiating is not None and not self._negotiating.done():
            self._negotiating.cancel()
            try:
                await self._negotiating
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass
        await self.pc.close()

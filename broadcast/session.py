"""The worker's seat in the room: a WebSocket to Parley's /ws and one receive-only
RTCPeerConnection, speaking PROTOCOL.md like any client, except that it joins with
``broadcaster_join`` (the secret the server gave this process): hidden, not counted, sent every
track (no channel holds). Room state arrives as for everyone (``joined``, ``participant_*``,
``channels``, ``caption``); tracks are drained into the mixer and the video sources."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from .mixing import AudioMixer, VideoSources

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RoomView:
    """What the broadcaster knows of the room (names, who is on air where, the pin)."""

    names: dict[str, str] = field(default_factory=dict)
    on_air: dict[str, str] = field(default_factory=dict)
    #: every channel someone went on air in (the room's list); renditions are made for these
    channels: list[str] = field(default_factory=list)
    pinned: str | None = None


@dataclass(frozen=True, slots=True)
class RoomCaption:
    """A caption of the floor: an interim (``final`` False: its first ``stable_chars``
    characters will not change) or a final."""

    caption_id: str
    participant_id: str
    lang: str
    text: str
    translations: dict[str, str]
    #: monotonic time of the audio at the caption's end (arrival minus the server's latency)
    end_mono_s: float
    duration_s: float
    final: bool = True
    stable_chars: int = 0
    #: a correction of an earlier final (same ``caption_id``): its texts replace that one's
    corrected: bool = False


def announce_only(addresses: list[str]) -> None:
    """ICE host candidates: the server's ``[media] ice_host_addresses`` (process-wide, as in
    media/hooks.py): the worker must offer what the SFU can reach, and aioice alone always
    leaves 127.0.0.1 out (no candidate at all in a loopback-only namespace). Empty: aioice's
    own choice, as the server makes it."""
    if not addresses:
        return
    import aioice.ice

    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def ws_origin(url: str) -> str:
    """The server's own origin for its /ws URL (PROTOCOL.md: non-browser clients send it)."""
    scheme, rest = url.split("://", 1)
    return ("https" if scheme == "wss" else "http") + "://" + rest.split("/", 1)[0]


class RoomSession:
    """Join, answer offers, drain tracks; ``run`` returns when the server closes the socket."""

    def __init__(
        self,
        *,
        url: str,
        room: str,
        secret: str,
        caption_languages: list[str],
        mixer: AudioMixer,
        video: VideoSources,
        on_caption: Callable[[RoomCaption], None],
        on_change: Callable[[], None],
    ) -> None:
        self.url, self.room, self._secret = url, room, secret
        self.caption_languages = caption_languages
        self.mixer, self.video = mixer, video
        self.on_caption, self.on_change = on_caption, on_change
        self.view = RoomView()
        self.joined = asyncio.Event()
        self.ended_reason: str | None = None
        self._slots: dict[str, dict[str, Any]] = {}
        self._ws: ClientConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # MAX_BUNDLE: as an answerer aiortc otherwise leaves later m-lines on a transport it
        # discards (their media never arrives); no ICE servers: the server is on this machine
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pc.on("track", self._on_track)

    async def run(self) -> None:
        context = None
        if self.url.startswith("wss://"):
            # the server's own listener on loopback (possibly self-signed); the secret is what
            # authenticates, and it never leaves this machine
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        async with connect(
            self.url,
            origin=Origin(ws_origin(self.url)),
            max_size=2**22,
            ssl=context,
        ) as ws:
            self._ws = ws
            await self._send({"type": "hello", "protocol": 1, "client": "parley-broadcast"})
            await self._send(
                {"type": "broadcaster_join", "room": self.room, "secret": self._secret}
            )
            try:
                async for raw in ws:
                    await self._handle(json.loads(raw))
            except ConnectionClosed:
                pass
            if self.ended_reason is None:
                self.ended_reason = f"closed {ws.close_code}"

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        await self.pc.close()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(message))

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        view = self.view
        if kind == "joined":
            for p in message.get("participants", []):
                view.names[p["participant_id"]] = p["name"]
            if self.caption_languages:
                await self._send({"type": "captions", "languages": self.caption_languages})
            self.joined.set()
        elif kind == "participant_joined":
            p = message["participant"]
            view.names[p["participant_id"]] = p["name"]
        elif kind == "participant_left":
            pid = message["participant_id"]
            view.names.pop(pid, None)
            self.mixer.forget(pid)
            self.video.forget(pid)
        elif kind == "track_unpublished":
            self.video.forget(message["participant_id"])
        elif kind == "channels":
            view.on_air = {
                c["channel"]: c["on_air"] for c in message.get("channels", []) if c.get("on_air")
            }
            view.channels = [c["channel"] for c in message.get("channels", [])]
        elif kind == "broadcast" and "pinned" in message:
            view.pinned = message.get("pinned")
        elif kind == "caption" and not message.get("channel"):
            # the floor's captions, interims too (the live stream shows their stable words
            # when they were said); latency_ms places them on this process's clock
            latency_s = float(message.get("latency_ms", 0)) / 1000
            self.on_caption(
                RoomCaption(
                    caption_id=str(message["caption_id"]),
                    participant_id=str(message["participant_id"]),
                    lang=str(message["lang"]),
                    text=str(message["text"]),
                    translations=dict(message.get("translations", {})),
                    end_mono_s=time.monotonic() - latency_s,
                    duration_s=max(0.0, float(message["end_s"]) - float(message["start_s"])),
                    final=bool(message.get("final")),
                    stable_chars=int(message.get("stable_chars", 0)),
                    corrected=bool(message.get("corrected")),
                )
            )
            return
        elif kind == "offer":
            await self._answer(message)
            return
        elif kind in ("meeting_ended", "server_closing"):
            self.ended_reason = kind
        elif kind == "error":
            log.warning("server error: %s", message.get("code"))
            if not self.joined.is_set():
                self.ended_reason = f"refused: {message.get('code')}"
                if self._ws is not None:
                    await self._ws.close()
            return
        else:
            return
        self.on_change()

    async def _answer(self, offer: dict[str, Any]) -> None:
        self._slots = dict(offer["slots"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send(
            {"type": "answer", "sdp": self.pc.localDescription.sdp, "revision": offer["revision"]}
        )

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        task = asyncio.get_running_loop().create_task(
            self._drain(track, transceiver.mid or ""), name=f"drain-{transceiver.mid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, track: MediaStreamTrack, mid: str) -> None:
        """Every track is drained (aiortc's track queue is unbounded); one owner per track. A
        reused m-line carries another participant's track: look the slot up per frame."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                slot = self._slots.get(mid)
                if slot is None or slot.get("direction") != "subscribe":
                    continue
                pid = str(slot["participant_id"])
                if isinstance(frame, AudioFrame):
                    self.mixer.push(pid, frame)
                elif isinstance(frame, VideoFrame):
                    source = "screen" if slot.get("source") == "screen" else "camera"
                    self.video.push(pid, source, frame, time.monotonic())

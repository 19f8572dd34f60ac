"""Janus participants on aiortc, for the side-by-side benchmark (``bench/janus.py``).

:class:`JanusClient`: a standalone Janus VideoRoom's participant. It is a
:class:`tests.support.client.ParleyClient` with Janus's JSON API instead of Parley's signaling,
so the media side (test card, fixed-rate VP8, Opus tone, frame counting, decoding check) is
exactly what the Parley run uses. One WebSocket session per client, one VideoRoom handle; the
publisher offers (``joinandconfigure``), a subscriber answers Janus's offer (``join`` as
``subscriber`` + ``start``). Non-trickle: aiortc puts its candidates in the SDP.

:class:`JanusEngineClient`: the publisher of a Parley whose ``[media] backend`` is "janus". It
speaks Parley's protocol, and publishes the way PROTOCOL.md's "Janus engine" says: its tracks on
a second, send-only peer connection that it offers (``publish_offer`` → ``publish_answer``).
Subscribers need nothing new there: they are plain ``ParleyClient``s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.client import ParleyClient

from .janus_server import API_SECRET, ROOM_ID

PLUGIN = "janus.plugin.videoroom"


class JanusError(RuntimeError):
    pass


class JanusSession:
    """One Janus session with one plugin handle, over the WebSocket transport."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.session_id = 0
        self.handle_id = 0
        self._waiting: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await connect(self.url, subprotocols=["janus-protocol"], max_size=2**22)  # type: ignore[list-item]
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="janus-read")
        created = await self.request({"janus": "create"})
        self.session_id = int(created["data"]["id"])
        attached = await self.request({"janus": "attach", "plugin": PLUGIN})
        self.handle_id = int(attached["data"]["id"])

    async def request(self, body: dict[str, Any], *, final: bool = True) -> dict[str, Any]:
        """Send; return the reply (for plugin messages: the plugin's ``event``, after ``ack``)."""
        transaction = secrets.token_hex(8)
        message = {**body, "transaction": transaction, "apisecret": API_SECRET}
        if self.session_id:
            message["session_id"] = self.session_id
        if self.handle_id and body["janus"] == "message":
            message["handle_id"] = self.handle_id
        replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[transaction] = replies
        try:
            await self.ws.send(json.dumps(message))
            while True:
                reply = await asyncio.wait_for(replies.get(), 20)
                kind = reply.get("janus")
                if kind == "error":
                    raise JanusError(str(reply.get("error")))
                if kind == "ack" and body["janus"] == "message":
                    continue
                data = reply.get("plugindata", {}).get("data", {})
                if "error" in data:
                    raise JanusError(f"{data.get('error_code')}: {data['error']}")
                return reply
        finally:
            self._waiting.pop(transaction, None)

    async def message(
        self, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return await self.request(request)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                queue = self._waiting.get(message.get("transaction", ""))
                if queue is not None:
                    queue.put_nowait(message)
                else:
                    self.events.append(message)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request({"janus": "destroy"}), 3)
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class JanusClient(ParleyClient):
    """A VideoRoom publisher (if it has tracks) or a subscriber of the room's only publisher."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.janus = JanusSession(url)
        self.publisher_feed: int | None = None

    async def join(self) -> None:
        self.t_join = time.monotonic()
        await self.janus.open()
        if any(self.local.values()):
            await self._join_publisher()
        else:
            await self._join_subscriber()

    def _tell(self, message: dict[str, Any]) -> None:
        """Feed ``on_message`` watchers the Parley-shaped step (bench/sfu_peers.watch)."""
        if self.on_message is not None:
            self.on_message(message)

    async def _join_publisher(self) -> None:
        for kind, track in self.local.items():
            if track is not None:
                self.pc.addTransceiver(track, direction="sendonly")
                self.published[kind] = kind
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription
        reply = await self.janus.message(
            {
                "request": "joinandconfigure",
                "room": ROOM_ID,
                "ptype": "publisher",
                "display": self.name,
                "audio": True,
                "video": True,
            },
            {"type": offer.type, "sdp": offer.sdp},
        )
        data = reply["plugindata"]["data"]
        self.participant_id = str(data["id"])
        self._tell({"type": "joined"})
        jsep = reply["jsep"]
        self._tell({"type": "offer", "sdp": jsep["sdp"]})
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="answer"))

    async def _join_subscriber(self) -> None:
        feed = await self._publisher_feed()
        reply = await self.janus.message(
            {
                "request": "join",
                "room": ROOM_ID,
                "ptype": "subscriber",
                "streams": [{"feed": feed}],
            }
        )
        self._tell({"type": "joined"})
        jsep = reply["jsep"]
        self._tell({"type": "offer", "sdp": jsep["sdp"]})
        self.slots = {}
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = self.pc.localDescription
        await self.janus.message({"request": "start"}, {"type": answer.type, "sdp": answer.sdp})

    async def _publisher_feed(self) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = await self.janus.message({"request": "listparticipants", "room": ROOM_ID})
            people = [p for p in reply["plugindata"]["data"]["participants"] if p.get("publisher")]
            if people:
                return int(people[0]["id"])
            await asyncio.sleep(0.2)
        raise JanusError("no publisher in the room")

    async def leave(self) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.janus.close()
        await self.pc.close()


class JanusEngineClient(ParleyClient):
    """Parley's protocol with the Janus engine's publishing connection (``pub_pc``); the
    receiving connection is ``pc``, as for every ``ParleyClient``."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.pub_pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._publish_revision = 0

    async def join(self) -> None:
        """Join (``join.publish`` declares the kinds), then offer the publishing connection."""
        await super().join()
        if self._joined_message().get("media_engine") != "janus":
            raise JanusError("the server's media engine is not Janus")
        if any(self.local.values()):
            await self._publish_offer()

    def _joined_message(self) -> dict[str, Any]:
        return next((m for m in self.messages if m["type"] == "joined"), {})

    async def _publish_offer(self) -> None:
        for track in self.local.values():
            if track is not None:
                self.pub_pc.addTransceiver(track, direction="sendonly")
        await self.pub_pc.setLocalDescription(await self.pub_pc.createOffer())
        sources = {
            str(t.mid): "microphone" if t.kind == "audio" else "camera"
            for t in self.pub_pc.getTransceivers()
        }
        self._publish_revision += 1
        revision = self._publish_revision
        await self.send(
            {
                "type": "publish_offer",
                "sdp": self.pub_pc.localDescription.sdp,
                "revision": revision,
                "sources": sources,
            }
        )

        def answer() -> dict[str, Any] | None:
            return next(
                (
                    m
                    for m in self.messages
                    if m["type"] == "publish_answer" and m["revision"] == revision
                ),
                None,
            )

        if not await self.wait_for(lambda: answer() is not None or bool(self.errors), 15):
            raise JanusError(f"{self.name}: no publish_answer within 15 s")
        reply = answer()
        if reply is None:
            raise JanusError(f"{self.name}: publish_offer refused: {self.errors}")
        await self.pub_pc.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )

    async def close(self) -> None:
        await super().close()
        await self.pub_pc.close()

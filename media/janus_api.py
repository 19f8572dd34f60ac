"""A small client of Janus's JSON API over its WebSocket transport (Parley's own, no SDK).

One :class:`JanusConnection` holds one WebSocket and one Janus session; plugin handles
(:class:`JanusHandle`) hang off it. Requests carry a transaction id and are answered by
``success``/``error`` (core and synchronous plugin requests) or ``ack`` then ``event``
(asynchronous plugin requests); everything else Janus sends (``webrtcup``, ``media``,
``hangup``, ``slowlink``, unsolicited plugin ``event``s) goes to the handle's event callback.
The API secret is sent with every request; the session is kept alive while the connection lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from .errors import MediaError

log = logging.getLogger(__name__)

Json = dict[str, Any]
#: Receives a handle's asynchronous messages (plain JSON, Janus's own shape), on the event loop.
OnHandleEvent = Callable[[Json], None]

VIDEOROOM = "janus.plugin.videoroom"
#: Janus drops a session after 60 s without traffic (``session_timeout``): ping well before.
KEEPALIVE_INTERVAL_S = 25.0
REQUEST_TIMEOUT_S = 15.0


class JanusError(MediaError):
    """Janus refused a request (``code`` is Janus's or the plugin's error code, if any)."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{code}: {message}")
        self.code = code


class JanusConnection:
    """One WebSocket to Janus with one session. ``open()`` once, ``aclose()`` when done."""

    def __init__(self, url: str, *, api_secret: str) -> None:
        self.url = url
        self._api_secret = api_secret
        self._ws: ClientConnection | None = None
        self.session_id = 0
        self._waiting: dict[str, asyncio.Queue[Json]] = {}
        self._handles: dict[int, OnHandleEvent] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        #: called once when the WebSocket or the session is lost (not after ``aclose``)
        self.on_lost: Callable[[str], None] | None = None

    async def open(self) -> None:
        self._ws = await connect(
            self.url,
            subprotocols=[Subprotocol("janus-protocol")],
            max_size=2**22,
            open_timeout=REQUEST_TIMEOUT_S,
        )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._read(), name="janus-read"))
        created = await self.request({"janus": "create"})
        self.session_id = int(created["data"]["id"])
        self._tasks.append(loop.create_task(self._keepalive(), name="janus-keepalive"))

    @property
    def closed(self) -> bool:
        """Closed by us, or lost (Janus went away, or the session timed out)."""
        return self._closed

    async def attach(self, plugin: str, on_event: OnHandleEvent) -> JanusHandle:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle_id = int(reply["data"]["id"])
        self._handles[handle_id] = on_event
        return JanusHandle(self, handle_id)

    async def info(self, *, timeout_s: float = REQUEST_TIMEOUT_S) -> Json:
        """Janus's ``server_info`` (name, ``version_string``, plugins...): the cheapest request
        that proves Janus answers (a core request outside the session)."""
        return await self.request({"janus": "info"}, session=False, timeout_s=timeout_s)

    async def request(
        self,
        body: Mapping[str, Any],
        *,
        handle_id: int = 0,
        session: bool = True,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Json:
        """Send ``body``; return the reply that ends it (``success``, or a plugin ``event``
        after Janus's ``ack``). Raises :class:`JanusError` on ``error`` or a plugin error.
        ``session``: in this connection's session (Janus refuses ``info`` inside one)."""
        if self._ws is None or self._closed:
            raise JanusError("not connected to Janus")
        transaction = secrets.token_hex(8)
        message: Json = {**body, "transaction": transaction, "apisecret": self._api_secret}
        if self.session_id and session:
            message["session_id"] = self.session_id
        if handle_id:
            message["handle_id"] = handle_id
        replies: asyncio.Queue[Json] = asyncio.Queue()
        self._waiting[transaction] = replies
        try:
            await self._ws.send(json.dumps(message))
            while True:
                reply = await asyncio.wait_for(replies.get(), timeout_s)
                kind = reply.get("janus")
                if kind == "error":
                    error = reply.get("error", {})
                    raise JanusError(str(error.get("reason", error)), code=error.get("code"))
                if kind == "ack" and body.get("janus") in ("message", "keepalive"):
                    if body.get("janus") == "keepalive":
                        return reply
                    continue
                data = reply.get("plugindata", {}).get("data", {})
                if "error" in data:
                    raise JanusError(str(data["error"]), code=data.get("error_code"))
                return reply
        except TimeoutError:
            raise JanusError(f"no answer from Janus to {body.get('janus')}") from None
        finally:
            self._waiting.pop(transaction, None)

    def forget(self, handle_id: int) -> None:
        self._handles.pop(handle_id, None)

    async def aclose(self) -> None:
        """Destroy the session (best effort) and close; idempotent."""
        if self._closed:
            return
        if self._ws is not None and self.session_id:
            with contextlib.suppress(JanusError, ConnectionClosed, OSError):
                await asyncio.wait_for(self.request({"janus": "destroy"}), 3)
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self) -> None:
        assert self._ws is not None
        reason = "Janus closed the connection"
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                queue = self._waiting.get(message.get("transaction") or "")
                if queue is not None:  # ack, success, error, or a plugin request's event
                    queue.put_nowait(message)
                    continue
                if message.get("janus") == "timeout":
                    reason = "the Janus session timed out"
                    break
                callback = self._handles.get(int(message.get("sender") or 0))
                if callback is not None:
                    try:
                        callback(message)
                    except Exception:  # a boundary: one bad event must not stop the reader
                        log.exception("handling a Janus event failed: %s", message.get("janus"))
        except ConnectionClosed:
            pass
        if not self._closed:
            self._closed = True
            for queue in self._waiting.values():
                queue.put_nowait({"janus": "error", "error": {"reason": reason}})
            if self.on_lost is not None:
                self.on_lost(reason)

    async def _keepalive(self) -> None:
        while not self._closed:
            await asyncio.sleep(KEEPALIVE_INTERVAL_S)
            try:
                await self.request({"janus": "keepalive"})
            except JanusError as exc:
                log.warning("Janus keepalive failed: %s", exc)


class JanusHandle:
    """One plugin handle (one peer connection on Janus's side)."""

    def __init__(self, connection: JanusConnection, handle_id: int) -> None:
        self.connection = connection
        self.handle_id = handle_id

    async def message(self, body: Mapping[str, Any], jsep: Mapping[str, Any] | None = None) -> Json:
        """A plugin request; returns Janus's final reply (``success`` or ``event``)."""
        request: Json = {"janus": "message", "body": dict(body)}
        if jsep is not None:
            request["jsep"] = dict(jsep)
        return await self.connection.request(request, handle_id=self.handle_id)

    async def detach(self) -> None:
        """Hang up and drop the handle (best effort: the session may already be gone)."""
        self.connection.forget(self.handle_id)
        with contextlib.suppress(JanusError, ConnectionClosed, OSError):
            await self.connection.request({"janus": "detach"}, handle_id=self.handle_id)


def plugin_data(reply: Json) -> Json:
    """The plugin's own payload of a reply or event (``{}`` if it has none)."""
    data = reply.get("plugindata", {}).get("data", {})
    return data if isinstance(data, dict) else {}

"""A bare protocol client for acceptance tests of signaling: JSON in and out, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from .origin import ws_origin


class RawClient:
    """Messages skipped while waiting for another type are kept (``backlog``)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        hello: bool = True,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawClient:
        """``origin``: the ``Origin`` header (default: the server's own, from ``url``);
        ``headers``: more request headers."""
        client = cls(
            await connect(
                url,
                max_size=None,
                origin=Origin(origin) if origin is not None else ws_origin(url),
                additional_headers=headers,
            )
        )
        if hello:
            await client.send({"type": "hello", "protocol": 1})
            assert (await client.recv("welcome"))["protocol"] == 1
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, type_: str | None = None, timeout_s: float = 10) -> dict[str, Any]:
        for i, message in enumerate(self.backlog):
            if type_ is None or message["type"] == type_:
                return self.backlog.pop(i)
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s))
            if type_ is None or message["type"] == type_:
                return message
            self.backlog.append(message)

    async def error(self, timeout_s: float = 10) -> dict[str, Any]:
        return await self.recv("error", timeout_s)

    async def drain(self, quiet_s: float = 0.3) -> list[dict[str, Any]]:
        """Everything received until nothing arrives for ``quiet_s`` (backlog included)."""
        messages, self.backlog = self.backlog, []
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while True:
                messages.append(json.loads(await asyncio.wait_for(self.ws.recv(), quiet_s)))
        return messages

    async def closed(self, timeout_s: float = 10) -> int | None:
        """Read until the server closes; returns the close code."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                self.backlog.append(json.loads(await asyncio.wait_for(self.ws.recv(), timeout_s)))
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()

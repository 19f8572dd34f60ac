"""Per-client outbox: order, bound, drain on close."""

from __future__ import annotations

import asyncio

import pytest

from server.outbox import Outbox, OutboxFullError


async def test_sends_in_order_and_drains_on_close() -> None:
    sent: list[str] = []

    async def send(message: str) -> None:
        sent.append(message)

    outbox = Outbox(send, max_messages=8)
    writer = asyncio.create_task(outbox.run())
    for i in range(5):
        outbox.put(str(i))
    outbox.close()
    await asyncio.wait_for(writer, 1)
    assert sent == ["0", "1", "2", "3", "4"]
    outbox.put("after close")  # ignored, never sent
    assert len(outbox) == 0


async def test_a_client_that_does_not_read_overflows() -> None:
    blocked = asyncio.Event()

    async def send(message: str) -> None:
        await blocked.wait()

    outbox = Outbox(send, max_messages=8)
    writer = asyncio.create_task(outbox.run())
    await asyncio.sleep(0)
    with pytest.raises(OutboxFullError):
        for i in range(100):
            outbox.put(str(i))
    assert len(outbox) == 8
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer

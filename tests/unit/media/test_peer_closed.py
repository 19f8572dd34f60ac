"""A peer connection that aiortc closed by itself (the other side closed DTLS: it left) and
that is then asked to renegotiate (someone else left the room) sends no offer and raises
nothing: the 30-minute soak saw 'Task exception was never retrieved: RTCPeerConnection is
closed' from the negotiation task when four speakers left together."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCConfiguration

from media.peer import Peer


async def test_renegotiating_a_connection_aiortc_closed_sends_nothing_and_raises_nothing() -> None:
    events: list[Any] = []
    peer = Peer(
        "p1",
        configuration=RTCConfiguration(iceServers=[]),
        emit=events.append,
        on_track=lambda *args: None,
        subscriber_max_frames=8,
    )
    peer.pc.addTransceiver("audio", direction="recvonly")
    await peer.pc.close()  # what aiortc does once every DTLS transport is closed
    peer.request_negotiation()
    task = peer._negotiating
    assert task is not None
    await asyncio.wait_for(task, 5)
    assert task.exception() is None
    assert events == []  # no offer for a closed connection
    await peer.aclose()

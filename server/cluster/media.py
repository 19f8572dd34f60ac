"""Media nodes in the cluster directory (issue 18): a Janus server that a Parley node drives
(``[media] backend = "janus"``) appears beside the Parley nodes as its own heartbeat key,
``<prefix>:media:<id>`` (:class:`MediaNodeInfo`), listed in ``<prefix>:media_nodes``. Pure: what
Janus answered comes in as :class:`MediaStatus`; :mod:`.node` does the I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .placement import MAX_NODE_ID_CHARS, ClusterConfigError, check_node_id, live_heartbeats


def media_address(url: str) -> str:
    """A media server's address as the directory shows it: its URL without user, password,
    query or fragment (where secrets could hide). ``ws://`` or ``wss://`` only."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ClusterConfigError(f"media server URL is not a URL ({exc})") from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ClusterConfigError("the media server URL must be ws:// or wss:// with a host")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def media_node_id(url: str) -> str:
    """A media node's id from its URL (``ws://10.0.0.20:8188`` -> ``janus-10.0.0.20-8188``):
    the same Janus has the same id whichever node drives it."""
    parts = urlsplit(media_address(url))
    raw = f"janus-{parts.netloc}" + ("" if parts.path in ("", "/") else parts.path)
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in raw).strip("-")
    return check_node_id(cleaned[:MAX_NODE_ID_CHARS])


@dataclass(frozen=True, slots=True)
class MediaStatus:
    """What a media server answered one heartbeat's probe, and what the driving node has on
    it."""

    #: the server's own version (Janus: ``info``'s ``version_string``)
    version: str
    rooms: int
    participants: int
    #: published tracks it forwards
    streams: int


@dataclass(frozen=True, slots=True)
class MediaNodeInfo:
    """A media server's heartbeat key (JSON): written by the Parley node that drives it, only
    while it answers."""

    media_id: str
    #: its URL, without secrets (:func:`media_address`)
    address: str
    #: the id of the Parley node that drives it
    driver: str
    #: participants in rooms on it
    load: int
    streams: int
    rooms: int
    #: participants it takes (the driver's ``[cluster] capacity``)
    capacity: int
    version: str

    @classmethod
    def of(cls, status: MediaStatus, *, address: str, driver: str, capacity: int) -> MediaNodeInfo:
        return cls(
            media_id=media_node_id(address),
            address=media_address(address),
            driver=driver,
            load=status.participants,
            streams=status.streams,
            rooms=status.rooms,
            capacity=capacity,
            version=status.version,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.media_id,
                "kind": "janus",
                "address": self.address,
                "driver": self.driver,
                "load": self.load,
                "streams": self.streams,
                "rooms": self.rooms,
                "capacity": self.capacity,
                "version": self.version,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> MediaNodeInfo | None:
        """None for a value this version cannot read (ignored, as :meth:`NodeInfo.from_json`)."""
        try:
            data: Any = json.loads(text)
            info = cls(
                media_id=str(data["id"]),
                address=str(data["address"]),
                driver=str(data["driver"]),
                load=int(data["load"]),
                streams=int(data["streams"]),
                rooms=int(data["rooms"]),
                capacity=int(data["capacity"]),
                version=str(data["version"]),
            )
            check_node_id(info.media_id)
            check_node_id(info.driver)
            if media_address(info.address) != info.address:
                raise ValueError("an address with secrets")
        except (ValueError, TypeError, KeyError):
            return None
        return info


def live_media_nodes(
    values: Sequence[tuple[str, str | bytes | None]],
) -> tuple[list[MediaNodeInfo], list[str]]:
    """``(id, heartbeat value)`` pairs of media nodes -> (live ones, ids to forget)."""
    return live_heartbeats(values, MediaNodeInfo.from_json, lambda m: m.media_id)

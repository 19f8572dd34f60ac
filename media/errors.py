"""Errors raised by the media plane."""

from __future__ import annotations


class MediaError(Exception):
    """Base class of every media-plane error."""


class SdpError(MediaError):
    """A session description could not be parsed or applied."""


class StaleAnswerError(MediaError):
    """An answer arrived for an offer that is no longer the current one."""


class MediaStateError(MediaError):
    """The request does not fit the peer's state (e.g. publishing a kind twice)."""


class UnknownPeerError(MediaError):
    """No peer with that id in this room."""


class MediaWorkerError(MediaError):
    """A room's media worker process died, stopped answering or broke the wire protocol.

    The room's peers are gone with it; the server removes them (``PeerFailed``).
    """

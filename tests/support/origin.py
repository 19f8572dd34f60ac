"""The ``Origin`` a test or benchmark client sends: the page that would have opened the socket.

The server refuses a WebSocket whose Origin it does not serve (PROTOCOL.md "Connecting"), and in
open mode one without an Origin, so every non-browser client sends the origin of the server it
connects to, as a browser on the server's own page does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from websockets.typing import Origin

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def ws_origin(url: str) -> Origin:
    """``ws://127.0.0.1:8750/ws`` -> ``http://127.0.0.1:8750`` (wss -> https)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.netloc:
        raise ValueError(f"not a ws://, wss:// or http(s):// URL: {url!r}")
    return Origin(f"{_SCHEMES[parts.scheme]}://{parts.netloc}")

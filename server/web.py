"""Static files of the browser client, served by the same listener as the WebSocket."""

from __future__ import annotations

import mimetypes
from importlib import resources
from importlib.resources.abc import Traversable

from websockets.datastructures import Headers
from websockets.http11 import Response

_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
# Same-origin everything; media from getUserMedia and the SFU (blob:/mediastream: sources).
_CSP = "; ".join(
    [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream: data:",  # data: hls.js's empty WebVTT <track>
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def csp(connect_src: list[str]) -> str:
    """The pages' Content-Security-Policy, ``connect_src`` added to ``connect-src``."""
    if not connect_src:
        return _CSP
    return _CSP.replace("connect-src 'self'", " ".join(["connect-src 'self'", *connect_src]))


class StaticFiles:
    """Files of the ``web`` package, read once at start (they are small)."""

    def __init__(self) -> None:
        root = resources.files("web")
        self._files: dict[str, tuple[bytes, str]] = {}
        self._collect(root, "")

    def _collect(self, node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                if not child.name.startswith(("_", ".")):
                    self._collect(child, f"{prefix}{child.name}/")
                continue
            suffix = "." + child.name.rsplit(".", 1)[-1]
            if suffix in _TYPES:
                self._files[f"/{prefix}{child.name}"] = (child.read_bytes(), _TYPES[suffix])

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def response(self, path: str, *, connect_src: list[str] | None = None) -> Response | None:
        """The file at ``path`` (``/`` is ``/index.html``), or None when there is none;
        ``connect_src``: sockets its page may open besides its own origin's (a cluster's
        nodes)."""
        path = path.split("?", 1)[0]
        if path == "/":
            path = "/index.html"
        found = self._files.get(path)
        if found is None:
            return None
        body, content_type = found
        headers = Headers(
            [
                ("Content-Type", f"{content_type}; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Content-Security-Policy", csp(connect_src or [])),
            ]
        )
        return Response(200, "OK", headers, body)


def text_response(status: int, reason: str, text: str) -> Response:
    return bytes_response(status, reason, "text/plain; charset=utf-8", text.encode())


def bytes_response(status: int, reason: str, content_type: str, body: bytes) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status, reason, headers, body)


mimetypes.add_type("text/javascript", ".js")

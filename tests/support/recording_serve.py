"""``parley`` (the real CLI) that also appends every HTTP request target the server receives
(``GET /?room=a HTTP/1.1`` → ``/?room=a``), one per line, to the file named by
``$PARLEY_TEST_REQUEST_LOG``: what a proxy's access log would keep. For tests that check a
secret never reaches the server in a URL. Run: ``python -m tests.support.recording_serve serve …``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from server.app import App
from server.cli import main

#: line-buffered: each target is on disk before its response goes out
_OUT = Path(os.environ["PARLEY_TEST_REQUEST_LOG"]).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115
_route = App._route  # every HTTP request (pages, /readyz, the /ws upgrade) passes through it


@functools.wraps(_route)
async def _recording_route(self: App, connection: Any, request: Any) -> Any:
    _OUT.write(f"{request.path}\n")
    return await _route(self, connection, request)


App._route = _recording_route  # type: ignore[method-assign]

if __name__ == "__main__":
    main()

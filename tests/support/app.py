"""A real Parley server in the test's own process, on 127.0.0.1 (any free port)."""

from __future__ import annotations

from typing import Any

from server.app import App
from server.settings import load_settings


def loopback_settings(**overrides: Any) -> Any:
    """Settings for a test server: any free port on 127.0.0.1, loopback ICE only, and captions
    off (no speech worker to start) unless the test turns them on."""
    media = {"ice_host_addresses": ["127.0.0.1"], **overrides.pop("media", {})}
    captions = {"enabled": False, **overrides.pop("captions", {})}
    return load_settings(
        None,
        server={"port": 0, **overrides.pop("server", {})},
        media=media,
        captions=captions,
        **overrides,
    )


async def started_app(**overrides: Any) -> App:
    """A real server with :func:`loopback_settings` (``overrides`` by section), started; the
    caller stops it."""
    instance = App(loopback_settings(**overrides))
    await instance.start()
    return instance


def ws_url(app: App) -> str:
    return f"ws://127.0.0.1:{app.port}/ws"

"""Shared fixtures: a real Parley server on loopback, clients in their own processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import hypothesis
import pytest

from server.app import App
from server.settings import load_settings
from tests.support.browser import Netns

# Several suites share the machine's cores: how fast examples are generated or run is not what the
# property tests check (a 1.2 s draw under load failed the too_slow health check).
hypothesis.settings.register_profile(
    "parley", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("parley")

REPO = Path(__file__).resolve().parents[1]
#: Scale for waits in tests (a slow CI machine can set PARLEY_TEST_TIME_SCALE=2).
TIME_SCALE = float(os.environ.get("PARLEY_TEST_TIME_SCALE", "1"))


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


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    """A loopback-only network namespace for a browser test module (the host's namespace when
    not root or when PARLEY_TEST_NETNS=0)."""
    ns = Netns()
    sys.stderr.write(f"network namespace: {'loopback-only' if ns.prefix else 'host'}\n")
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def host_netns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Netns]:
    """The host's namespace (the server still listens on loopback only), for tests with aiortc
    peers: aiortc gathers no ICE candidate in a namespace that has nothing but loopback."""
    monkeypatch.setenv("PARLEY_TEST_NETNS", "0")
    ns = Netns()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
async def app() -> AsyncIterator[App]:
    """A real server on 127.0.0.1 (any free port), in this process."""
    instance = App(loopback_settings())
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.fixture
async def captioning_app() -> AsyncIterator[App]:
    """A real server with captions on (a speech worker with the real models)."""
    instance = App(loopback_settings(captions={"enabled": True}))
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


async def started_app(**overrides: Any) -> App:
    """A real server with :func:`loopback_settings` (``overrides`` by section), started; the
    caller stops it."""
    instance = App(loopback_settings(**overrides))
    await instance.start()
    return instance


def ws_url(app: App) -> str:
    return f"ws://127.0.0.1:{app.port}/ws"


async def run_client_process(*args: str, timeout_s: float = 60) -> dict[str, Any]:
    """Run ``tests/support/run_client.py`` with ``args``; returns its JSON summary."""
    return await run_module("tests.support.run_client", *args, timeout_s=timeout_s)


async def run_module(
    module: str, *args: str, timeout_s: float = 60, prefix: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository (after ``prefix``, e.g. ``nsenter``);
    returns the JSON it prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s * TIME_SCALE)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode()[-3000:]
    result: dict[str, Any] = json.loads(out)
    return result

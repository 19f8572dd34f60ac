"""Shared fixtures: a real Parley server on loopback, network namespaces. The helpers are in
tests/support (which bench/ imports too); fixtures only here."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import hypothesis
import pytest

from server.app import App
from tests.support.app import loopback_settings
from tests.support.netns import Namespace

# Several suites share the machine's cores: how fast examples are generated or run is not what the
# property tests check (a 1.2 s draw under load failed the too_slow health check).
hypothesis.settings.register_profile(
    "parley", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("parley")


@pytest.fixture(autouse=True)
def _aioice_host_addresses() -> Iterator[None]:
    """Give back aioice's own choice of ICE host addresses after every test: an in-process
    server (``App`` with ``ice_host_addresses = ["127.0.0.1"]``) sets it for the whole process
    (media/hooks.py), and a later test's aiortc clients on a namespace LAN then offered only
    127.0.0.1 and never connected (test_cluster_speech_worker failed in the full suite only)."""
    yield
    hooks = sys.modules.get("media.hooks")
    if hooks is not None:
        hooks.restrict_host_addresses([])


@pytest.fixture(scope="module")
def netns() -> Iterator[Namespace]:
    """A loopback-only network namespace for a browser test module (the host's namespace when
    not root or when PARLEY_TEST_NETNS=0)."""
    ns = Namespace.loopback_or_host()
    sys.stderr.write(f"network namespace: {'loopback-only' if ns.isolated else 'host'}\n")
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def host_netns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Namespace]:
    """The host's namespace (the server still listens on loopback only), for tests with aiortc
    peers: aiortc gathers no ICE candidate in a namespace that has nothing but loopback."""
    monkeypatch.setenv("PARLEY_TEST_NETNS", "0")
    ns = Namespace(isolated=False)
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

"""The pure decisions of server.origins: which origins may open /ws, and when automatic open mode
refuses a request that came through a proxy."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers

from server.origins import (
    OriginError,
    OriginPolicy,
    host_name,
    is_loopback_host,
    origin_policy,
    parse_origin,
    proxied_refusal,
    served_hosts,
)
from server.settings import ConfigError, load_settings


def policy(
    *,
    host: str = "127.0.0.1",
    port: int = 8750,
    tls: bool = False,
    local_names: tuple[str, ...] = (),
    public_url: str = "",
    allowed_origins: tuple[str, ...] = (),
    origin_required: bool = True,
) -> OriginPolicy:
    return origin_policy(
        hosts=served_hosts(host=host, local_names=local_names),
        port=port,
        tls=tls,
        public_url=public_url,
        allowed_origins=allowed_origins,
        origin_required=origin_required,
    )


def allows(p: OriginPolicy, origin: str | None) -> bool:
    headers = Headers() if origin is None else Headers(Origin=origin)
    return p.refusal(headers) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://Meet.Example.ORG", "https://meet.example.org"),
        ("https://meet.example.org:443", "https://meet.example.org"),
        ("http://meet.example.org:80/", "http://meet.example.org"),
        ("HTTP://a.org:8080", "http://a.org:8080"),
        ("http://[::1]:8750", "http://[::1]:8750"),
        ("http://[0:0:0:0:0:0:0:1]:8750", "http://[::1]:8750"),
    ],
)
def test_origins_are_normalized(text: str, expected: str) -> None:
    assert parse_origin(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "meet.example.org",
        "ftp://a.org",
        "https://",
        "https://a.org/parley",
        "https://a.org?x=1",
        "https://user@a.org",
        "https://a.org:99999",
        "null",
    ],
)
def test_what_is_not_an_origin(text: str) -> None:
    with pytest.raises(OriginError):
        parse_origin(text)


def test_a_public_url_may_have_a_path() -> None:
    assert parse_origin("https://a.org/parley/", path_allowed=True) == "https://a.org"


def test_loopback_host_serves_its_loopback_names_on_its_port() -> None:
    p = policy(host="127.0.0.1", port=8750)
    for origin in (
        "http://127.0.0.1:8750",
        "http://localhost:8750",
        "http://LOCALHOST:8750",
        "http://[::1]:8750",
    ):
        assert allows(p, origin), origin
    for origin in (
        "https://evil.example",
        "http://127.0.0.1:8751",  # another port is another origin
        "https://127.0.0.1:8750",  # Parley does not terminate TLS here
        "http://localhost.evil.example:8750",
        "null",  # sandboxed frames and file:// pages
        "",
    ):
        assert not allows(p, origin), origin


def test_tls_makes_the_scheme_https_and_default_ports_are_left_out() -> None:
    p = policy(host="127.0.0.1", port=443, tls=True)
    assert allows(p, "https://localhost")
    assert allows(p, "https://localhost:443")
    assert not allows(p, "http://localhost")


def test_a_specific_address_serves_only_itself() -> None:
    p = policy(host="192.168.1.5", port=8750, local_names=("myhost",))
    assert allows(p, "http://192.168.1.5:8750")
    assert not allows(p, "http://localhost:8750")
    assert not allows(p, "http://myhost:8750")


def test_a_wildcard_host_serves_loopback_and_this_machines_names() -> None:
    p = policy(host="0.0.0.0", port=8750, local_names=("myhost", "10.1.2.3", "fe80::1"))
    for origin in (
        "http://localhost:8750",
        "http://myhost:8750",
        "http://10.1.2.3:8750",
        "http://[fe80::1]:8750",
    ):
        assert allows(p, origin), origin
    assert not allows(p, "http://0.0.0.0:8750")
    assert not allows(p, "http://10.1.2.4:8750")


def test_public_url_and_allowed_origins_are_allowed() -> None:
    p = policy(
        public_url="https://Meet.Example.org/room/",
        allowed_origins=("https://other.example.org:8443",),
    )
    assert allows(p, "https://meet.example.org")
    assert allows(p, "https://other.example.org:8443")
    assert not allows(p, "http://meet.example.org")  # scheme matters
    assert not allows(p, "https://other.example.org")


def test_a_missing_origin_is_refused_in_open_mode_only() -> None:
    assert not allows(policy(origin_required=True), None)
    assert allows(policy(origin_required=False), None)
    reason = policy(origin_required=True).refusal(Headers())
    assert reason is not None and "Origin" in reason


def test_several_origin_headers_are_refused() -> None:
    p = policy()
    headers = Headers([("Origin", "http://127.0.0.1:8750"), ("Origin", "https://evil.example")])
    assert p.refusal(headers) is not None


def test_a_refusal_quotes_a_long_origin_only_in_part() -> None:
    reason = policy().refusal(Headers(Origin="https://" + "a" * 5000 + ".example"))
    assert reason is not None and len(reason) < 400


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("app.localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("meet.example.org", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8750", "127.0.0.1"),
        ("localhost", "localhost"),
        ("[::1]:8750", "::1"),
        ("[::1]", "::1"),
        ("meet.example.org:443", "meet.example.org"),
    ],
)
def test_host_header_names(header: str, name: str) -> None:
    assert host_name(header) == name


def test_a_direct_local_request_is_not_proxied() -> None:
    assert proxied_refusal(Headers(Host="127.0.0.1:8750")) is None
    assert proxied_refusal(Headers(Host="localhost:8750")) is None
    assert proxied_refusal(Headers(Host="[::1]:8750")) is None


@pytest.mark.parametrize(
    "headers",
    [
        Headers(Host="127.0.0.1:8750", **{"X-Forwarded-For": "203.0.113.7"}),
        Headers(Host="127.0.0.1:8750", **{"x-forwarded-host": "meet.example.org"}),
        Headers(Host="127.0.0.1:8750", **{"X-Forwarded-Proto": "https"}),
        Headers(Host="127.0.0.1:8750", Forwarded="for=203.0.113.7"),
        Headers(Host="meet.example.org"),  # nginx's `proxy_set_header Host $host`
        Headers(Host="10.0.0.5:8750"),
        Headers(),  # no Host at all
        Headers([("Host", "127.0.0.1"), ("Host", "meet.example.org")]),
    ],
)
def test_proxied_or_public_requests_are_refused_with_advice(headers: Headers) -> None:
    reason = proxied_refusal(headers)
    assert reason is not None
    assert 'mode = "open"' in reason and "token" in reason


def test_settings_validate_and_normalize_the_new_keys() -> None:
    settings = load_settings(
        None,
        server={
            "allowed_origins": ["HTTPS://Meet.Example.org:443"],
            "public_url": "https://meet.example.org/",
        },
    )
    assert settings.server.allowed_origins == ["https://meet.example.org"]
    with pytest.raises(ConfigError) as bad:
        load_settings(None, server={"allowed_origins": ["https://a.org/path"]})
    assert "server.allowed_origins" in str(bad.value) and "without a path" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        load_settings(None, server={"public_url": "meet.example.org"})
    assert "server.public_url" in str(bad.value)

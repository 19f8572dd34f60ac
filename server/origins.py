"""Who may open the signaling WebSocket, decided from the upgrade request alone (no I/O).

1. **Origin.** A browser sends the page's origin with every WebSocket upgrade and lets any page
   open a socket to any server, so without this check a page on ``https://evil.example`` could
   join an open-mode room on the user's machine (cross-site WebSocket hijacking). Allowed: the
   origins the server itself serves (its scheme, host and actual port), ``[server] public_url``
   and ``[server] allowed_origins``. A request without ``Origin`` (not a browser) is refused in
   open mode and allowed in token mode, where the room token is the credential.
2. **Open mode behind a proxy.** ``[auth] mode = "auto"`` picks open mode on a loopback address;
   a reverse proxy on the same machine would then make that open server public. So when open
   mode was decided automatically, a request that came through a proxy (``X-Forwarded-*``,
   ``Forwarded``) or names a non-loopback ``Host`` is refused; ``mode = "open"`` set explicitly
   accepts it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.datastructures import Headers

#: hosts that only this machine can reach (also the names a browser on it uses)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
DEFAULT_PORTS = {"http": 80, "https": 443}
#: headers a reverse proxy adds (RFC 7239 and the de-facto X-Forwarded-* family)
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto")


class OriginError(ValueError):
    """Not an origin: scheme http/https, a host, an optional port, nothing else."""


def _host(host: str) -> str:
    """Lowercase; an IP address in its canonical form, IPv6 in brackets."""
    host = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def make_origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]``, normalized (the scheme's default port left out)."""
    scheme = scheme.lower()
    shown = "" if port is None or port == DEFAULT_PORTS.get(scheme) else f":{port}"
    return f"{scheme}://{_host(host)}{shown}"


def parse_origin(text: str, *, path_allowed: bool = False) -> str:
    """``text`` (an Origin header, or with ``path_allowed`` a URL) as a normalized origin.

    Raises :class:`OriginError` with the reason."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise OriginError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise OriginError(f"{text!r}: the scheme must be http or https")
    if not parts.hostname:
        raise OriginError(f"{text!r}: no host")
    if parts.username is not None or parts.password is not None:
        raise OriginError(f"{text!r}: no user name or password in an origin")
    if parts.query or parts.fragment:
        raise OriginError(f"{text!r}: no query (?) or fragment (#) here")
    if not path_allowed and parts.path not in ("", "/"):
        raise OriginError(f"{text!r}: an origin is scheme://host[:port], without a path")
    return make_origin(parts.scheme, parts.hostname, port)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The origins allowed to open /ws, and whether a request without one is refused."""

    allowed: frozenset[str]
    origin_required: bool

    def refusal(self, headers: Headers, *, also: frozenset[str] = frozenset()) -> str | None:
        """None when the request's ``Origin`` may open /ws, else why not (``also``: origins
        allowed besides, e.g. the pages of the cluster's other nodes)."""
        values = headers.get_all("Origin")
        origin = ", ".join(values) if values else None  # several: not one origin, refused
        if origin is None:
            if not self.origin_required:
                return None
            return (
                "missing Origin header: in open mode only the server's own web pages may "
                "connect (a non-browser client sends the server's origin, e.g. "
                "http://127.0.0.1:8750)"
            )
        try:
            normalized = parse_origin(origin)
        except OriginError:
            normalized = None
        if normalized is not None and (normalized in self.allowed or normalized in also):
            return None
        shown = origin if len(origin) <= 100 else origin[:100] + "..."
        return (
            f"Origin {shown!r} is not allowed: pages of other sites may not connect "
            "(the operator can add it to [server] allowed_origins or set [server] public_url)"
        )


def served_hosts(*, host: str, local_names: Iterable[str]) -> list[str]:
    """The host names and addresses under which the server is reached directly: ``host``;
    for a loopback or wildcard ``host`` also localhost, 127.0.0.1 and ::1; for a wildcard one
    also ``local_names`` (this machine's name and addresses, see server.tls.local_names)."""
    hosts: list[str] = []
    wildcard = host in WILDCARD_HOSTS
    if not wildcard:
        hosts.append(host)
    if wildcard or is_loopback_host(host):
        hosts += LOOPBACK_HOSTS
    if wildcard:
        hosts += local_names
    return list(dict.fromkeys(hosts))


def origin_policy(
    *,
    hosts: Iterable[str],
    port: int,
    tls: bool,
    public_url: str,
    allowed_origins: Iterable[str],
    origin_required: bool,
) -> OriginPolicy:
    """The server's own origins (``hosts`` on ``port``, https when Parley terminates TLS),
    ``public_url``'s origin and ``allowed_origins`` (both validated by the settings)."""
    scheme = "https" if tls else "http"
    allowed = {make_origin(scheme, h, port) for h in hosts}
    if public_url:
        allowed.add(parse_origin(public_url, path_allowed=True))
    allowed.update(parse_origin(o) for o in allowed_origins)
    return OriginPolicy(allowed=frozenset(allowed), origin_required=origin_required)


def is_loopback_host(host: str) -> bool:
    """localhost (or a name under .localhost), 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8750`` -> ``::1``, ``a.org:443`` -> ``a.org``."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def proxied_refusal(headers: Headers) -> str | None:
    """For open mode decided automatically: None when the request came straight from this
    machine, else why it is refused (it came through a proxy or names a public host)."""
    forwarded = [name for name in PROXY_HEADERS if name in headers]
    hosts = headers.get_all("Host")
    if not forwarded and len(hosts) == 1 and is_loopback_host(host_name(hosts[0])):
        return None
    why = (
        f"it came through a proxy ({', '.join(forwarded)})"
        if forwarded
        else "its Host is not a loopback address"
    )
    return (
        f"open mode was chosen automatically because Parley listens on a loopback address, "
        f"but {why}: this server may be reachable from the Internet. Configure room tokens "
        '([auth] secret_file) or, to let anyone in on purpose, set [auth] mode = "open".'
    )

"""ICE servers handed to browsers: the configured ones, plus a TURN relay with coturn's
time-limited credentials (the "TURN REST API", coturn ``use-auth-secret``).

coturn checks such a credential without any call back to Parley: the username carries its own
expiry, and the credential is an HMAC of the username with the secret both sides share. The
username's label is the connection id (logged with the participant id at join), so coturn's
logs can be matched with Parley's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from .settings import Settings


def turn_credential(secret: str, label: str, *, now_s: float, ttl_s: int) -> tuple[str, str]:
    """``(username, credential)``: username ``"<expiry unix time>:<label>"``, credential
    ``base64(HMAC-SHA1(secret, username))``, as coturn's ``use-auth-secret`` expects."""
    username = f"{int(now_s) + ttl_s}:{label}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    settings: Settings, label: str, *, now_s: float, not_after_s: float | None = None
) -> list[dict[str, Any]]:
    """The ``joined`` message's ``ice_servers`` for one admitted connection (PROTOCOL.md): the
    TURN credential lives ``credential_ttl_s``, never past ``not_after_s`` (the room token's
    expiry, unix seconds)."""
    ice: list[dict[str, Any]] = []
    for s in settings.media.ice_servers:
        entry: dict[str, Any] = {"urls": list(s.urls)}
        if s.username is not None:
            entry["username"] = s.username
        if s.credential is not None:
            entry["credential"] = s.credential
        ice.append(entry)
    turn = settings.turn
    ttl_s = turn.credential_ttl_s
    if not_after_s is not None:
        ttl_s = min(ttl_s, int(not_after_s - now_s))
    if turn.urls and ttl_s > 0:
        username, credential = turn_credential(
            turn.static_auth_secret, label, now_s=now_s, ttl_s=ttl_s
        )
        ice.append({"urls": list(turn.urls), "username": username, "credential": credential})
    return ice

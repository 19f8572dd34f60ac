"""Who may enter a room, and as what: JWT room tokens, open mode and room passwords.

Pure: verifying a token reads only the token, the configured key and the clock. The algorithm
comes from configuration and is the only one accepted (never the token's ``alg`` header), so
``alg: none`` and HS256-signed-with-the-public-key tokens are rejected like any bad signature.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_args

import jwt

from .protocol import MAX_TOKEN_CHARS
from .rooms import Role
from .settings import AuthSettings, ConfigError

ROLES: Final[frozenset[str]] = frozenset(get_args(Role))
#: shortest HMAC secret accepted per algorithm (RFC 7518 §3.2: at least the hash size)
MIN_SECRET_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
HMAC_ALGORITHMS: Final = frozenset(MIN_SECRET_BYTES)


class AuthError(Exception):
    """A join was refused for a credential reason; ``code`` is one of PROTOCOL.md's codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows: one room, one role, optionally a fixed display name."""

    room: str
    role: Role
    name: str | None
    expires_s: float
    #: what makes this token one seat: ``jti:<jti>``, or a digest of the token itself for tokens
    #: issued without a ``jti`` (one token, one seat either way; a removal refuses the seat)
    seat: str


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"auth.{what}: cannot read {path}: {exc.strerror}") from exc


def _secret(auth: AuthSettings) -> bytes:
    secret = (
        _read(auth.secret_file, "secret_file").strip() if auth.secret_file else auth.secret.encode()
    )
    needed = MIN_SECRET_BYTES[auth.algorithm]
    if len(secret) < needed:
        raise ConfigError(
            f"auth.secret{'_file' if auth.secret_file else ''}: the secret has {len(secret)} "
            f"bytes, {auth.algorithm} needs at least {needed} (e.g. `openssl rand -hex {needed}`)"
        )
    return secret


def verification_key(auth: AuthSettings) -> Any:
    """The key tokens are checked with (the secret, or the loaded public key)."""
    if auth.algorithm in HMAC_ALGORITHMS:
        return _secret(auth)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(_read(auth.public_key_path, "public_key_path"))
    except ValueError as exc:
        raise ConfigError(f"auth.public_key_path: not a PEM public key: {exc}") from exc


def signing_key(auth: AuthSettings) -> Any:
    """The key ``parley token`` signs with (the secret, or the private key)."""
    if auth.algorithm in HMAC_ALGORITHMS:
        return _secret(auth)
    if not auth.private_key_path:
        raise ConfigError(f"auth.private_key_path is needed to sign {auth.algorithm} tokens")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(_read(auth.private_key_path, "private_key_path"), None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"auth.private_key_path: not an unencrypted PEM key: {exc}") from exc


class TokenVerifier:
    """Checks room tokens against the configured algorithm and key."""

    def __init__(
        self,
        *,
        algorithm: str,
        key: Any,
        leeway_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._algorithm = algorithm
        self._key = key
        self._leeway_s = leeway_s
        self._clock = clock

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> TokenVerifier:
        return cls(algorithm=auth.algorithm, key=verification_key(auth), leeway_s=auth.leeway_s)

    def verify(self, token: str, room: str) -> Grant:
        """The token's grant for ``room``; raises :class:`AuthError` with ``token_invalid``,
        ``token_expired``, ``token_not_yet_valid`` or ``token_wrong_room``."""
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthError("token_invalid", f"the token is longer than {MAX_TOKEN_CHARS} chars")
        now = self._clock()
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                # exp/nbf are checked below against the injected clock
                options={
                    "require": ["exp", "room", "role"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("token_invalid", f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(
                "token_invalid", f"the token is not signed with {self._algorithm}"
            ) from None
        except jwt.InvalidSignatureError:
            raise AuthError("token_invalid", "the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise AuthError("token_invalid", f"malformed token: {exc}") from None
        exp, nbf = claims["exp"], claims.get("nbf")
        if not _is_number(exp) or (nbf is not None and not _is_number(nbf)):
            raise AuthError("token_invalid", "exp and nbf must be numbers (seconds since 1970)")
        if now > exp + self._leeway_s:
            raise AuthError("token_expired", "the token has expired")
        if nbf is not None and now + self._leeway_s < nbf:
            raise AuthError("token_not_yet_valid", "the token is not valid yet")
        role, name, token_room = claims["role"], claims.get("name"), claims["room"]
        if role not in ROLES:
            raise AuthError("token_invalid", f"unknown role {role!r}")
        if not isinstance(token_room, str) or not hmac.compare_digest(
            token_room.encode(), room.encode()
        ):
            raise AuthError("token_wrong_room", "the token is for another room")
        if name is not None and (not isinstance(name, str) or not 1 <= len(name.strip()) <= 64):
            raise AuthError("token_invalid", "the token's name must be 1-64 characters")
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not 1 <= len(jti) <= 128):
            raise AuthError("token_invalid", "the token's jti must be 1-128 characters")
        seat = (
            f"jti:{jti}"
            if jti is not None
            else "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:32]
        )
        return Grant(
            room=room,
            role=role,
            name=None if name is None else name.strip(),
            expires_s=float(exp),
            seat=seat,
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def issue_token(
    auth: AuthSettings,
    *,
    room: str,
    role: Role,
    ttl_s: float,
    name: str | None = None,
    now_s: float | None = None,
) -> str:
    """A signed room token (what ``parley token`` prints inside a link)."""
    now = time.time() if now_s is None else now_s
    claims: dict[str, Any] = {
        "room": room,
        "role": role,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + ttl_s),
        # one token, one seat: a second join with it replaces the first; a host's removal
        # refuses it until it expires
        "jti": secrets.token_urlsafe(16),
    }
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, signing_key(auth), algorithm=auth.algorithm)


def password_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a room password."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())

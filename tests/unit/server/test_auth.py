"""Room tokens: what verifies and every way one must not (pure: injected clock, no server)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from server.auth import AuthError, TokenVerifier, issue_token, password_matches, verification_key
from server.settings import AuthSettings, ConfigError, load_settings

SECRET = "s" * 64
NOW = 1_800_000_000.0


def auth(**overrides: Any) -> AuthSettings:
    return load_settings(None, auth={"secret": SECRET, **overrides}).auth


def verifier(settings: AuthSettings | None = None, now: float = NOW) -> TokenVerifier:
    settings = settings or auth()
    return TokenVerifier(
        algorithm=settings.algorithm,
        key=verification_key(settings),
        leeway_s=settings.leeway_s,
        clock=lambda: now,
    )


def hs256(claims: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def claims(**overrides: Any) -> dict[str, Any]:
    return {"room": "board", "role": "participant", "exp": NOW + 60, **overrides}


def code(token: str, room: str = "board", v: TokenVerifier | None = None) -> str:
    with pytest.raises(AuthError) as info:
        (v or verifier()).verify(token, room)
    return info.value.code


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_good_token_grants_its_room_role_and_name() -> None:
    grant = verifier().verify(hs256(claims(role="host", name=" Ada ")), "board")
    assert (grant.room, grant.role, grant.name, grant.expires_s) == (
        "board",
        "host",
        "Ada",
        NOW + 60,
    )
    issued = issue_token(auth(), room="board", role="interpreter", ttl_s=7200, now_s=NOW)
    grant = verifier().verify(issued, "board")
    assert grant.role == "interpreter" and grant.name is None and grant.expires_s == NOW + 7200


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (hs256(claims(exp=NOW - 6)), "token_expired"),  # beyond the 5 s leeway
        (hs256(claims(nbf=NOW + 6)), "token_not_yet_valid"),
        (hs256(claims(room="other")), "token_wrong_room"),
        (hs256(claims(), key="k" * 64), "token_invalid"),  # wrong key
        (jwt.encode(claims(), None, algorithm="none"), "token_invalid"),
        (b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".", "token_invalid"),
        (
            jwt.encode(claims(), SECRET, algorithm="HS512"),
            "token_invalid",
        ),  # not the configured alg
        (hs256(claims(role="admin")), "token_invalid"),
        (hs256({"room": "board", "role": "host"}), "token_invalid"),  # no exp: never expires
        (hs256(claims(exp="tomorrow")), "token_invalid"),
        (hs256(claims(name="")), "token_invalid"),
        ("not.a.jwt", "token_invalid"),
        ("x" * 5000, "token_invalid"),
    ],
)
def test_bad_tokens_get_their_documented_code(token: str, expected: str) -> None:
    assert code(token) == expected


def test_leeway_tolerates_small_clock_skew() -> None:
    assert verifier().verify(hs256(claims(exp=NOW - 4, nbf=NOW + 4)), "board").role == "participant"


def test_a_tampered_payload_fails_the_signature() -> None:
    header, _, signature = hs256(claims()).split(".")
    forged = f"{header}.{b64(claims(role='host'))}.{signature}"
    assert code(forged) == "token_invalid"


@given(
    st.dictionaries(st.sampled_from(["room", "role", "name", "exp", "nbf"]), st.text(max_size=8))
)
def test_any_resigned_payload_with_another_key_is_rejected(extra: dict[str, str]) -> None:
    assert code(hs256({**claims(), **extra}, key="z" * 64)) in {"token_invalid"}


def test_rs256_verifies_with_the_public_key_and_refuses_key_confusion(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pub_pem)
    (tmp_path / "key.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings = load_settings(
        None,
        auth={
            "algorithm": "RS256",
            "public_key_path": str(tmp_path / "pub.pem"),
            "private_key_path": str(tmp_path / "key.pem"),
        },
    ).auth
    v = verifier(settings)
    token = issue_token(settings, room="board", role="viewer", ttl_s=60, now_s=NOW)
    assert v.verify(token, "board").role == "viewer"
    # the classic confusion: HS256 "signed" with the public key's PEM as the secret
    confused = _hs256_raw(claims(), pub_pem)
    assert code(confused, v=v) == "token_invalid"


def _hs256_raw(payload: dict[str, Any], key: bytes) -> str:
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_eddsa_tokens(tmp_path: Path) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "pub.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = load_settings(
        None, auth={"algorithm": "EdDSA", "public_key_path": str(tmp_path / "pub.pem")}
    ).auth
    token = jwt.encode(claims(role="host"), private, algorithm="EdDSA")
    assert verifier(settings).verify(token, "board").role == "host"
    assert code(hs256(claims()), v=verifier(settings)) == "token_invalid"


def test_key_problems_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HS256 needs at least 32"):
        verification_key(auth(secret="short"))
    with pytest.raises(ConfigError, match="secret_file"):
        verification_key(auth(secret="", secret_file=str(tmp_path / "missing")))
    (tmp_path / "secret").write_text("f" * 64 + "\n")
    assert verification_key(auth(secret="", secret_file=str(tmp_path / "secret"))) == b"f" * 64
    (tmp_path / "pub.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="public_key_path"):
        verification_key(auth(algorithm="RS256", public_key_path=str(tmp_path / "pub.pem")))


def test_open_mode_only_by_default_on_loopback() -> None:
    assert load_settings().auth_mode() == "open"
    assert load_settings(None, auth={"secret": SECRET}).auth_mode() == "token"
    with pytest.raises(ConfigError, match="server.host = '0.0.0.0'.*auth.mode = 'open'"):
        load_settings(None, server={"host": "0.0.0.0"})
    assert load_settings(None, server={"host": "0.0.0.0"}, auth={"mode": "open"}).auth_mode() == (
        "open"
    )
    assert load_settings(None, server={"host": "::1"}).auth_mode() == "open"
    with pytest.raises(ConfigError, match="needs a key"):
        load_settings(None, auth={"mode": "token"})


def test_passwords_compare_exactly() -> None:
    assert password_matches("pw", "pw")
    assert not password_matches("pw", "pW") and not password_matches("pw", None)


def test_issued_tokens_carry_a_jti_and_each_token_is_one_seat() -> None:
    settings = auth()
    first = issue_token(settings, room="board", role="participant", ttl_s=60, now_s=NOW)
    second = issue_token(settings, room="board", role="participant", ttl_s=60, now_s=NOW)
    jti = jwt.decode(first, options={"verify_signature": False})["jti"]
    assert len(jti) >= 16
    one, other = verifier().verify(first, "board"), verifier().verify(second, "board")
    assert one.seat == f"jti:{jti}" and other.seat != one.seat
    # a token issued elsewhere without a jti is still one seat: its own digest
    plain = hs256(claims())
    assert verifier().verify(plain, "board").seat == verifier().verify(plain, "board").seat
    assert verifier().verify(plain, "board").seat.startswith("sha256:")
    assert code(hs256(claims(jti=7))) == "token_invalid"

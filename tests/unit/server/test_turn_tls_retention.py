"""TURN REST credentials, the self-signed certificate, transcript retention (pure parts and
files; the served versions are in tests/acceptance/test_operations_e2e.py)."""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from server.retention import Retention
from server.settings import load_settings
from server.tls import local_names, self_signed, server_context, tls_files
from server.turn import ice_servers_for, turn_credential


def test_turn_credential_is_coturns_hmac() -> None:
    username, credential = turn_credential("s3cret", "c-abc", now_s=1_700_000_000.7, ttl_s=3600)
    assert username == "1700003600:c-abc"
    # the same HMAC computed by OpenSSL (what coturn uses), not by our code
    digest = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", "s3cret", "-binary"],
        input=username.encode(),
        capture_output=True,
        check=True,
    ).stdout
    assert credential == base64.b64encode(digest).decode()


def test_welcome_ice_servers_get_a_fresh_turn_entry() -> None:
    settings = load_settings(
        turn={"urls": ["turn:turn.example.org:3478"], "static_auth_secret": "k" * 32},
        media={"ice_servers": [{"urls": ["stun:stun.example.org"]}]},
    )
    ice = ice_servers_for(settings, "c-1", now_s=1000.0)
    assert ice[0] == {"urls": ["stun:stun.example.org"]}
    assert ice[1]["urls"] == ["turn:turn.example.org:3478"]
    assert ice[1]["username"] == f"{1000 + settings.turn.credential_ttl_s}:c-1"
    assert ice[1]["credential"] != ice_servers_for(settings, "c-2", now_s=1000.0)[1]["credential"]
    assert ice_servers_for(load_settings(), "c-1", now_s=1000.0) == []  # nothing by default


def test_turn_needs_secret_and_turn_urls() -> None:
    from server.settings import ConfigError

    with pytest.raises(ConfigError, match="static_auth_secret"):
        load_settings(turn={"urls": ["turn:t:3478"]})
    with pytest.raises(ConfigError, match="not a turn: or turns: URL"):
        load_settings(turn={"urls": ["stun:t:3478"], "static_auth_secret": "x"})


def test_self_signed_certificate_is_made_once_and_serves_tls(tmp_path: Path) -> None:
    names = local_names(["parley.lan", "10.1.2.3"], "0.0.0.0")
    assert {"localhost", "127.0.0.1", "parley.lan", "10.1.2.3"} <= set(names)
    first = self_signed(tmp_path / "tls", names, valid_days=30)
    assert first.generated
    assert os.stat(first.key_path).st_mode & 0o077 == 0  # the key is the server's alone
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "parley.lan" in san.get_values_for_type(x509.DNSName)
    valid = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=29) < valid <= datetime.timedelta(days=30)
    again = self_signed(tmp_path / "tls", names, valid_days=30)
    assert not again.generated and again.fingerprint == first.fingerprint
    assert len(first.fingerprint.split(":")) == 32
    other = self_signed(tmp_path / "tls", [*names, "new.lan"], valid_days=30)
    assert other.generated and other.fingerprint != first.fingerprint  # a new name: new cert
    assert isinstance(server_context(other), ssl.SSLContext)


def test_a_regenerated_key_is_0600_whatever_the_old_file_was(tmp_path: Path) -> None:
    """An operator (or a restore) left key.pem group/world-readable: making a new certificate
    must not keep that mode (O_CREAT's mode applies only to a new file)."""
    names = local_names([], "127.0.0.1")
    first = self_signed(tmp_path / "tls", names, valid_days=30)
    first.key_path.chmod(0o644)
    renewed = self_signed(tmp_path / "tls", [*names, "new.lan"], valid_days=30)
    assert renewed.generated and renewed.key_path == first.key_path
    assert oct(os.stat(renewed.key_path).st_mode & 0o777) == oct(0o600)
    assert not [p.name for p in (tmp_path / "tls").iterdir() if p.name.startswith(".")]


def test_tls_settings_pick_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(server={"data_dir": str(tmp_path)}, tls={"mode": "self-signed"})
    files = tls_files(settings)
    assert files is not None and files.cert_path == tmp_path / "tls" / "cert.pem"
    assert tls_files(load_settings()) is None


def test_retention_none_stores_nothing(tmp_path: Path) -> None:
    retention = Retention(load_settings().retention, tmp_path)
    retention.record("room", "captions", {"text": "hello"})
    assert not any(tmp_path.iterdir()) and retention.written == 0
    assert "nothing" in retention.describe()


def test_retention_jsonl_writes_per_room_and_purges(tmp_path: Path) -> None:
    settings = load_settings(retention={"mode": "jsonl", "kinds": ["captions"], "max_age_h": 1})
    retention = Retention(settings.retention, tmp_path)
    retention.record("board", "captions", {"caption_id": "a", "text": "hello"})
    retention.record("board", "captions", {"caption_id": "b", "text": "again"})
    retention.record("board", "chat", {"text": "not kept"})  # chat not in kinds
    files = list((tmp_path / "transcripts" / "board").iterdir())
    assert len(files) == 1 and files[0].suffix == ".jsonl"
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert [r["caption_id"] for r in lines] == ["a", "b"] and lines[0]["kind"] == "captions"
    assert "under" in retention.describe() and "1 h" in retention.describe()
    assert retention.purge(now_s=time.time()) == 0  # fresh
    assert retention.purge(now_s=time.time() + 3601) == 1  # older than max_age_h
    assert not (tmp_path / "transcripts" / "board").exists()

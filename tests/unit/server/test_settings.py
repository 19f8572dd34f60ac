"""Configuration: embedded defaults, overlay, validation with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings
from tests.support.paths import REPO


def test_defaults_are_private_by_default() -> None:
    s = load_settings()
    assert s.server.host == "127.0.0.1"
    assert s.media.ice_servers == []  # no public STUN unless the operator adds one
    media = s.media.to_media_settings()
    assert media.ice_servers == () and media.pli_min_interval_s == 0.35


def test_example_config_is_valid() -> None:
    s = load_settings(REPO / "config" / "example.toml")
    assert s.media.isolation == "process"
    assert s.media.to_media_settings().ice_servers[0].urls == ("turn:turn.internal.example:3478",)


def test_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[server]\nport = 9999\n")
    s = load_settings(path, rooms={"max_participants_per_room": 4})
    assert s.server.port == 9999 and s.server.host == "127.0.0.1"
    assert s.rooms.max_participants_per_room == 4


def test_the_final_beam_reaches_the_speech_workers(tmp_path: Path) -> None:
    """Issue 12: finals are decoded with a beam of 5 by default; an operator with many
    speakers on few cores sets 1 (greedy, as interims)."""
    assert load_settings().captions.pipeline_config().recognizer.final_beam_size == 5
    path = tmp_path / "p.toml"
    path.write_text("[captions]\nfinal_beam_size = 1\n")
    assert load_settings(path).captions.pipeline_config().recognizer.final_beam_size == 1


def test_the_quiet_speech_gain_reaches_the_voice_activity_detector(tmp_path: Path) -> None:
    """Issue 12: the VAD hears quiet input amplified by up to 30 dB; 0 turns that off."""
    vad = load_settings().captions.pipeline_config().vad
    assert vad.max_gain_db == 30.0 and vad.level_target_dbfs is not None
    path = tmp_path / "p.toml"
    path.write_text("[captions]\nquiet_speech_gain_db = 12\n")
    assert load_settings(path).captions.pipeline_config().vad.max_gain_db == 12.0
    path.write_text("[captions]\nquiet_speech_gain_db = 0\n")
    assert load_settings(path).captions.pipeline_config().vad.level_target_dbfs is None


def test_the_background_voice_gate_reaches_the_voice_activity_detector(tmp_path: Path) -> None:
    """Issue 12: a voice 15 dB below the speaker's is not theirs; 0 turns that off."""
    assert load_settings().captions.pipeline_config().vad.background_gate_db == 15.0
    path = tmp_path / "p.toml"
    path.write_text("[captions]\nbackground_voice_gate_db = 20\n")
    assert load_settings(path).captions.pipeline_config().vad.background_gate_db == 20.0
    path.write_text("[captions]\nbackground_voice_gate_db = 0\n")
    assert load_settings(path).captions.pipeline_config().vad.background_gate_db is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[media]\nisolation = 'threads'\n", "media.isolation"),
        ("[server\n", "p.toml"),
        ("[captions]\nfinal_beam_size = 0\n", "captions.final_beam_size"),
        ("[captions]\nquiet_speech_gain_db = -6\n", "captions.quiet_speech_gain_db"),
        ("[captions]\nbackground_voice_gate_db = -1\n", "captions.background_voice_gate_db"),
    ],
)
def test_invalid_files_say_where(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[server]\nport = 9999\nhost = '10.0.0.1'\n[auth]\nmode = 'open'\n")
    env = {
        "PARLEY_SERVER__PORT": "9100",
        "PARLEY_CAPTIONS__ENABLED": "true",
        "PARLEY_MEDIA__ICE_HOST_ADDRESSES": '["10.0.0.5"]',
        "PARLEY_EVALSET": "/not/config",  # no double underscore: not configuration
    }
    s = load_settings(path, environ=env)
    assert s.server.port == 9100 and s.server.host == "10.0.0.1"
    assert s.captions.enabled is True
    assert s.media.ice_host_addresses == ["10.0.0.5"]
    plain = load_settings(path, environ={"PARLEY_SERVER__HOST": "0.0.0.0"})
    assert plain.server.host == "0.0.0.0"  # not TOML: taken as a string


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"PARLEY_SERVER__PORT": "eighty", "PARLEY_SERVR__PORT": "1"})
    text = str(caught.value)
    assert "environment PARLEY_SERVER__PORT: server.port:" in text
    assert "environment PARLEY_SERVR__PORT: servr: unknown key" in text
    assert len(caught.value.problems) == 2


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[server]\nport = 'eighty'\ncolour = 'blue'\n[turn]\nurls = ['turn:t:3478']\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    problems = caught.value.problems
    assert any(p.startswith(f"{path}: server.port: ") and "'eighty'" in p for p in problems)
    assert f"{path}: server.colour: unknown key in [server] (see `parley defaults`)" in problems
    assert any("turn: " in p and "static_auth_secret" in p for p in problems)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cert_file '/nonexistent.pem': no such file"):
        load_settings(tls={"mode": "files", "cert_file": "/nonexistent.pem", "key_file": "/x.pem"})


def test_every_default_is_documented() -> None:
    """Each key of defaults.toml has a comment above it or above its group."""
    from server.settings import defaults_text

    lines = defaults_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and not line.startswith("["):
            j = i - 1
            while j >= 0 and "=" in lines[j] and not lines[j].startswith("#"):
                j -= 1
            assert j >= 0 and lines[j].startswith("#"), f"undocumented: {line}"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[media]\nbackend = 'janus'\n", "janus_url"),
        (
            "[media]\nbackend = 'janus'\njanus_url = 'ws://10.0.0.5:99999'\n",
            "janus_url: .*Port out of range",
        ),
        (
            "[media]\nbackend = 'janus'\njanus_url = 'ws://10.0.0.5:8188'\n"
            "janus_api_secret = 'janusrocks'\njanus_admin_key = 'x' \n",
            "janus_api_secret",
        ),
        (
            "[media]\nbackend = 'janus'\njanus_url = 'ws://10.0.0.5:8188'\n"
            f"janus_api_secret = '{'a' * 20}'\njanus_admin_key = 'supersecret'\n",
            "janus_admin_key",
        ),
    ],
)
def test_janus_needs_its_url_and_real_secrets(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(path)


def test_janus_backend_is_chosen_from_settings(tmp_path: Path) -> None:
    from media.janus_room import JanusMediaBackend
    from server.app import build_media_backend

    path = tmp_path / "p.toml"
    path.write_text(
        "[media]\nbackend = 'janus'\njanus_url = 'ws://10.0.0.5:8188'\n"
        f"janus_api_secret = '{'a' * 20}'\njanus_admin_key = '{'b' * 20}'\n"
    )
    s = load_settings(path)
    assert s.media.to_janus_settings().url == "ws://10.0.0.5:8188"
    assert isinstance(build_media_backend(s), JanusMediaBackend)

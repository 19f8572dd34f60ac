"""Configuration: embedded defaults, overlay, validation with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_private_by_default() -> None:
    s = load_settings()
    assert s.server.host == "127.0.0.1"
    assert s.media.ice_servers == []  # no public STUN unless the operator adds one
    media = s.media.to_media_settings()
    assert media.ice_servers == () and media.pli_min_interval_s == 0.3


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


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[media]\nisolation = 'threads'\n", "media.isolation"),
        ("[server\n", "p.toml"),
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

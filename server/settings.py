"""Configuration: the embedded ``config/defaults.toml`` overlaid with the operator's file,
validated once at start and passed explicitly from then on."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from media.api import IceServer, MediaSettings


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    max_message_bytes: int = Field(ge=1024)
    ping_interval_s: float = Field(gt=0)
    ping_timeout_s: float = Field(gt=0)
    outbox_max_messages: int = Field(ge=8)
    shutdown_timeout_s: float = Field(gt=0)


class RoomSettings(_Section):
    max_participants_per_room: int = Field(ge=1, le=1000)


class IceServerSettings(_Section):
    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


class MediaConfig(_Section):
    isolation: Literal["inline", "process"]
    ice_servers: list[IceServerSettings]
    ice_host_addresses: list[str]
    pli_min_interval_ms: int = Field(ge=0)
    subscriber_queue_frames: int = Field(ge=4)
    audio_tap: bool

    def to_media_settings(self) -> MediaSettings:
        return MediaSettings(
            ice_servers=tuple(
                IceServer(tuple(s.urls), s.username, s.credential) for s in self.ice_servers
            ),
            ice_host_addresses=tuple(self.ice_host_addresses),
            pli_min_interval_s=self.pli_min_interval_ms / 1000,
            subscriber_max_frames=self.subscriber_queue_frames,
            isolation=self.isolation,
            audio_tap=self.audio_tap,
        )


class CaptionSettings(_Section):
    enabled: bool
    model: str
    cpu_threads: int = Field(ge=1, le=64)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["console", "json"]


class Settings(_Section):
    server: ServerSettings
    rooms: RoomSettings
    media: MediaConfig
    captions: CaptionSettings
    logging: LoggingSettings


class ConfigError(Exception):
    """The configuration file is unreadable or invalid; the message says where."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def defaults_text() -> str:
    return resources.files("config").joinpath("defaults.toml").read_text(encoding="utf-8")


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then ``path``, then ``overrides`` (``{"server": {"port": 1}}``-shaped)."""
    data = tomllib.loads(defaults_text())
    if path is not None:
        try:
            data = _merge(data, tomllib.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    data = _merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc

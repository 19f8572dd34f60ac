"""Configuration: the embedded ``config/defaults.toml`` overlaid with the operator's file,
validated once at start and passed explicitly from then on."""

from __future__ import annotations

import ipaddress
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

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
    translation_engines: list[Literal["argos", "apertium", "whisper"]]
    pair_engines: dict[str, list[Literal["argos", "apertium", "whisper"]]]
    translate_interims: bool

    def pipeline_config(self) -> Any:
        """The :class:`interpret.compose.PipelineConfig` a speech worker is built from."""
        from interpret.compose import PipelineConfig, TranslationSettings
        from interpret.transcribe import RecognizerSettings

        return PipelineConfig(
            recognizer=RecognizerSettings(model=self.model, cpu_threads=self.cpu_threads),
            translation=TranslationSettings(
                engines=tuple(self.translation_engines),
                pair_engines={k: tuple(v) for k, v in self.pair_engines.items()},
                translate_interims=self.translate_interims,
            ),
        )


class AuthSettings(_Section):
    mode: Literal["auto", "open", "token"]
    algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "EdDSA"]
    secret: str
    secret_file: str
    public_key_path: str
    private_key_path: str
    leeway_s: float = Field(ge=0, le=300)
    room_passwords: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")], str]

    def has_token_key(self) -> bool:
        if self.algorithm.startswith("HS"):
            return bool(self.secret or self.secret_file)
        return bool(self.public_key_path)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LimitSettings(_Section):
    joins_per_room_per_s: float = Field(gt=0)
    join_burst: int = Field(ge=1)
    messages_per_connection_per_s: float = Field(gt=0)
    message_burst: int = Field(ge=1)
    max_sdp_chars: int = Field(ge=1024)
    max_media_sections: int = Field(ge=2)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["console", "json"]


class Settings(_Section):
    server: ServerSettings
    rooms: RoomSettings
    media: MediaConfig
    captions: CaptionSettings
    auth: AuthSettings
    limits: LimitSettings
    logging: LoggingSettings

    @model_validator(mode="after")
    def _media_sections_fit_a_full_room(self) -> Settings:
        # every participant can publish audio and video: a full room's offer has 2 m-lines each
        needed = 2 * self.rooms.max_participants_per_room
        if self.limits.max_media_sections < needed:
            raise ValueError(
                f"limits.max_media_sections ({self.limits.max_media_sections}) must be at least "
                f"2 x rooms.max_participants_per_room ({needed})"
            )
        return self

    @model_validator(mode="after")
    def _reachable_servers_need_access_control(self) -> Settings:
        auth = self.auth
        if auth.mode == "token" and not auth.has_token_key():
            raise ValueError(
                "auth.mode = 'token' needs a key: auth.secret or auth.secret_file for "
                f"{auth.algorithm}"
                if auth.algorithm.startswith("HS")
                else f"auth.mode = 'token' needs auth.public_key_path for {auth.algorithm}"
            )
        if auth.mode == "auto" and not auth.has_token_key() and not is_loopback(self.server.host):
            raise ValueError(
                f"server.host = {self.server.host!r} is reachable from other machines but no "
                "access control is configured: set auth.secret (or auth.secret_file / "
                "auth.public_key_path) for room tokens, or auth.mode = 'open' to let anyone in"
            )
        return self

    def auth_mode(self) -> Literal["open", "token"]:
        """``auth.mode`` with ``auto`` decided (validation made sure it can be)."""
        if self.auth.mode == "open":
            return "open"
        return "token" if self.auth.has_token_key() else "open"


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


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    msg = msg.removeprefix("Value error, ")  # a model validator's message names its keys
    return f"{'.'.join(str(p) for p in loc)}: {msg}" if loc else msg


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
        problems = "; ".join(_problem(e["loc"], e["msg"]) for e in exc.errors())
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc

"""Configuration: the embedded ``config/defaults.toml`` overlaid with the operator's file, then
with ``PARLEY_<SECTION>__<KEY>`` environment variables; validated once at start and passed
explicitly from then on. Every error names where the bad value came from (file or variable),
the key and the reason, all problems at once."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from media.api import IceServer, JanusSettings, MediaSettings

from .cluster.media import media_address
from .cluster.placement import ClusterConfigError, check_node_address, check_node_id
from .origins import OriginError, parse_origin

#: environment variables ``PARLEY_SERVER__PORT=9000`` set ``[server] port``
ENV_PREFIX = "PARLEY_"
ENV_SEPARATOR = "__"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str
    port: int = Field(ge=0, le=65535)
    max_message_bytes: int = Field(ge=1024)
    ping_interval_s: float = Field(gt=0)
    ping_timeout_s: float = Field(gt=0)
    outbox_max_messages: int = Field(ge=8)
    shutdown_flush_timeout_s: float = Field(ge=0, le=60)
    shutdown_timeout_s: float = Field(gt=0, le=60)
    data_dir: str
    trusted_proxies: list[str]

    @model_validator(mode="after")
    def _proxies_are_addresses(self) -> ServerSettings:
        for address in self.trusted_proxies:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"trusted_proxies: {address!r} is not an IP address") from None
        return self

    allowed_origins: list[str]
    public_url: str

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        try:
            return [parse_origin(origin) for origin in value]
        except OriginError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value:
            try:
                parse_origin(value, path_allowed=True)
            except OriginError as exc:
                raise ValueError(str(exc)) from None
        return value

    def data_path(self) -> Path:
        """``data_dir``, or ``$XDG_DATA_HOME/parley`` (``~/.local/share/parley``) when empty."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "parley"


class RoomSettings(_Section):
    max_participants_per_room: int = Field(ge=1, le=1000)


class IceServerSettings(_Section):
    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


#: what Debian's janus package ships (janus.jcfg, janus.plugin.videoroom.jcfg): never accepted
JANUS_SHIPPED_SECRETS = frozenset({"janusrocks", "janusoverlord", "supersecret"})


class MediaConfig(_Section):
    backend: Literal["aiortc", "janus"]
    isolation: Literal["inline", "process"]
    janus_url: str
    janus_api_secret: str
    janus_admin_key: str
    janus_tap_host: str
    ice_servers: list[IceServerSettings]
    ice_host_addresses: list[str]
    pli_min_interval_ms: int = Field(ge=0)
    subscriber_queue_frames: int = Field(ge=4)
    audio_tap: bool

    @model_validator(mode="after")
    def _janus_is_configured(self) -> MediaConfig:
        if self.backend != "janus":
            return self
        if not self.janus_url.startswith(("ws://", "wss://")):
            raise ValueError("media.backend = 'janus' needs media.janus_url (ws:// or wss://)")
        try:  # a cluster shows it (without secrets) and names its media node after it
            media_address(self.janus_url)
        except ClusterConfigError as exc:
            raise ValueError(f"media.janus_url: {exc}") from None
        for key in ("janus_api_secret", "janus_admin_key"):
            value = getattr(self, key)
            if len(value) < 16 or value in JANUS_SHIPPED_SECRETS:
                raise ValueError(
                    f"media.{key} must be set to Janus's own secret (16+ characters, never the "
                    "one Janus ships with)"
                )
        if self.isolation != "inline":
            raise ValueError("media.backend = 'janus' keeps rooms in Janus: isolation = 'inline'")
        return self

    def to_janus_settings(self) -> JanusSettings:
        return JanusSettings(
            url=self.janus_url,
            api_secret=self.janus_api_secret,
            admin_key=self.janus_admin_key,
            tap_host=self.janus_tap_host,
        )

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


class TurnSettings(_Section):
    urls: list[str]
    static_auth_secret: str
    credential_ttl_s: int = Field(ge=60, le=7 * 86400)

    @model_validator(mode="after")
    def _secret_with_urls(self) -> TurnSettings:
        if bool(self.urls) != bool(self.static_auth_secret):
            raise ValueError("urls and static_auth_secret go together (set both or neither)")
        for url in self.urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"{url!r} is not a turn: or turns: URL")
        return self


class TlsSettings(_Section):
    mode: Literal["off", "self-signed", "files"]
    cert_file: str
    key_file: str
    self_signed_names: list[str]
    self_signed_valid_days: int = Field(ge=1, le=825)

    @model_validator(mode="after")
    def _files_exist(self) -> TlsSettings:
        if self.mode == "files":
            for key in ("cert_file", "key_file"):
                value = getattr(self, key)
                if not value:
                    raise ValueError(f"mode 'files' needs {key}")
                if not Path(value).expanduser().is_file():
                    raise ValueError(f"{key} {value!r}: no such file")
        return self


class CaptionSettings(_Section):
    enabled: bool
    model: str
    cpu_threads: int = Field(ge=1, le=64)
    #: Whisper's beam for the decodes a final caption comes from (interims: 1)
    final_beam_size: int = Field(ge=1, le=16)
    #: the most the voice activity detector amplifies a quiet microphone by (0: not at all)
    quiet_speech_gain_db: float = Field(ge=0, le=40)
    #: a voice this far below the speaker's own is someone else's (0: every voice is theirs)
    background_voice_gate_db: float = Field(ge=0, le=60)
    translation_engines: list[Literal["argos", "apertium", "whisper"]]
    pair_engines: dict[str, list[Literal["argos", "apertium", "whisper"]]]
    translate_interims: bool
    worker_nice: int = Field(ge=0, le=19)
    #: local speech worker processes: "auto" (one per cpu_threads cores), or a number (0: none,
    #: remote workers only)
    workers: Literal["auto"] | Annotated[int, Field(ge=0, le=64)]
    #: speakers one local worker serves in real time (its weight when speakers are placed)
    speakers_per_worker: int = Field(ge=1, le=256)
    #: decodes of different speakers due at once sent to Whisper as one batch (1 on a CPU)
    batch_size: int = Field(ge=1, le=64)
    #: the shared secret remote speech workers present (empty: none may connect)
    worker_secret_file: str
    #: languages captions are read in here; the start log warns about those nothing reaches
    translation_languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]]

    @field_validator("model")
    @classmethod
    def _model_resolves(cls, model: str, info: ValidationInfo) -> str:
        # else `serve` listens but never gets ready (its speech worker cannot load the model)
        if info.data.get("enabled"):
            from interpret.models import ModelResolver

            reason = ModelResolver().unavailable_reason(model)
            if reason is not None:
                raise ValueError(reason)
        return model

    def local_workers(self, cores: int | None = None) -> int:
        """How many local speech workers to run."""
        if self.workers != "auto":
            return self.workers
        from interpret.pool import auto_workers

        return auto_workers(self.cpu_threads, cores)

    def pipeline_config(self) -> Any:
        """The :class:`interpret.compose.PipelineConfig` a speech worker is built from."""
        from interpret.compose import PipelineConfig, TranslationSettings
        from interpret.transcribe import RecognizerSettings
        from interpret.vad import VadSettings

        gain = self.quiet_speech_gain_db
        vad = VadSettings(max_gain_db=gain) if gain else VadSettings(level_target_dbfs=None)
        gate = self.background_voice_gate_db
        vad = dataclasses.replace(vad, background_gate_db=gate or None)
        return PipelineConfig(
            recognizer=RecognizerSettings(
                model=self.model,
                cpu_threads=self.cpu_threads,
                final_beam_size=self.final_beam_size,
            ),
            vad=vad,
            translation=TranslationSettings(
                engines=tuple(self.translation_engines),
                pair_engines={k: tuple(v) for k, v in self.pair_engines.items()},
                translate_interims=self.translate_interims,
            ),
            batch_size=self.batch_size,
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
    open_mode_removal_s: float = Field(gt=0, le=7 * 86400)

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


class ChatSettings(_Section):
    history_max_messages: int = Field(ge=0, le=10_000)
    translate_timeout_ms: int = Field(ge=100, le=60_000)


class LimitSettings(_Section):
    joins_per_room_per_s: float = Field(gt=0)
    join_burst: int = Field(ge=1)
    messages_per_connection_per_s: float = Field(gt=0)
    message_burst: int = Field(ge=1)
    max_sdp_chars: int = Field(ge=1024)
    max_media_sections: int = Field(ge=2)
    hello_timeout_s: float = Field(gt=0, le=600)
    join_timeout_s: float = Field(gt=0, le=3600)
    max_connections: int = Field(ge=1)
    max_connections_per_address: int = Field(ge=1)
    max_rooms: int = Field(ge=1)
    rooms_created_per_address_per_minute: int = Field(ge=1)
    credential_failures_free: int = Field(ge=0, le=100)
    credential_backoff_base_ms: int = Field(ge=1, le=60_000)
    credential_backoff_max_s: float = Field(gt=0, le=86_400)


class MetricsSettings(_Section):
    enabled: bool
    loop_lag_interval_ms: int = Field(ge=10, le=10_000)


class RetentionSettings(_Section):
    mode: Literal["none", "jsonl"]
    kinds: list[Literal["captions", "chat", "broadcasts", "audience"]]
    max_age_h: float = Field(gt=0)
    purge_interval_s: float = Field(ge=1)
    max_file_bytes: int = Field(ge=1024)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["console", "json"]


class InterpretingSettings(_Section):
    transcript_max_lines: int = Field(ge=1, le=100_000)
    retranslate_timeout_ms: int = Field(ge=100, le=60_000)
    glossary_max_entries: int = Field(ge=1, le=1000)
    handover_timeout_s: float = Field(gt=0, le=3600)
    duck_volume: float = Field(ge=0, le=1)


class BroadcastRendition(_Section):
    width: int = Field(ge=16, le=3840, multiple_of=2)
    height: int = Field(ge=16, le=2160, multiple_of=2)
    video_kbps: int = Field(ge=32, le=20_000)


class BroadcastSettings(_Section):
    """``[broadcast]``: HLS for audiences beyond the room (server/broadcast.py)."""

    rooms: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]]
    public: bool
    dir: str
    caption_languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]]
    channels: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]]
    renditions: list[BroadcastRendition] = Field(min_length=1, max_length=4)
    fps: int = Field(ge=5, le=60)
    segment_s: float = Field(ge=0.5, le=6)
    list_size: int = Field(ge=3, le=60)
    audio_kbps: int = Field(ge=16, le=320)
    ffmpeg: str

    def directory(self, data_path: Path) -> Path:
        """Where the broadcasts are written: ``dir``, else data_dir/broadcast."""
        return Path(self.dir).expanduser() if self.dir else data_path / "broadcast"


class AudienceSettings(_Section):
    """``[audience]``: questions, comments and polls from viewers (server/audience/)."""

    enabled: bool
    languages: list[Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]]
    pivot_lang: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
    max_chars: int = Field(ge=10, le=5000)
    per_viewer_per_min: int = Field(ge=1, le=1000)
    per_address_per_min: int = Field(ge=1, le=100_000)
    max_pending: int = Field(ge=1, le=100_000)
    group_threshold: float = Field(gt=0, le=1)
    document_max_age_s: int = Field(ge=1, le=60)
    translate_queue_max: int = Field(ge=1, le=100_000)
    stage_invite_ttl_s: float = Field(gt=0, le=3600)
    stage_join_window_s: float = Field(gt=0, le=600)
    max_on_stage: int = Field(ge=1, le=16)


class ClusterSettings(_Section):
    """``[cluster]``: several nodes placing rooms through one Redis (server/cluster/)."""

    #: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix:///path``); "" = a single node
    redis_url: str
    #: the URL clients reach this node's signaling at ("" = ws(s)://server.host:port/ws)
    node_address: str
    #: this node's id in Redis ("" = made from the address)
    node_id: str
    #: participants this node takes before placement prefers the others
    capacity: int = Field(ge=1)
    heartbeat_interval_s: float = Field(gt=0, le=60)
    node_ttl_s: float = Field(gt=0, le=600)
    key_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
    redis_timeout_s: float = Field(gt=0, le=30)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (or empty)")
        return value

    @field_validator("node_address")
    @classmethod
    def _node_address(cls, value: str) -> str:
        if value:
            try:
                check_node_address(value)
            except ClusterConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str) -> str:
        if value:
            try:
                check_node_id(value)
            except ClusterConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _ttl_outlives_beats(self) -> ClusterSettings:
        if self.node_ttl_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                "cluster.node_ttl_s must be at least 2 x cluster.heartbeat_interval_s (one late "
                "heartbeat must not make a live node look dead)"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url)


class Settings(_Section):
    server: ServerSettings
    rooms: RoomSettings
    media: MediaConfig
    turn: TurnSettings
    tls: TlsSettings
    captions: CaptionSettings
    chat: ChatSettings
    auth: AuthSettings
    limits: LimitSettings
    metrics: MetricsSettings
    retention: RetentionSettings
    logging: LoggingSettings
    interpreting: InterpretingSettings
    broadcast: BroadcastSettings
    audience: AudienceSettings
    cluster: ClusterSettings

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

    @model_validator(mode="after")
    def _a_cluster_node_has_an_address(self) -> Settings:
        c = self.cluster
        if c.enabled and not c.node_address and self.server.host in ("", "0.0.0.0", "::"):
            raise ValueError(
                "cluster.redis_url is set and server.host is a wildcard: set "
                "cluster.node_address to the ws:// or wss:// URL clients reach this node at"
            )
        return self

    def auth_mode(self) -> Literal["open", "token"]:
        """``auth.mode`` with ``auto`` decided (validation made sure it can be)."""
        if self.auth.mode == "open":
            return "open"
        return "token" if self.auth.has_token_key() else "open"


class ConfigError(Exception):
    """The configuration is unreadable or invalid; the message says where, what and why.

    ``problems`` lists one line per bad key (``source: key: reason``)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def _merge(
    base: dict[str, Any],
    override: Mapping[str, Any],
    origins: dict[str, str],
    source: str,
    prefix: str = "",
) -> dict[str, Any]:
    """``override`` over ``base``; ``origins`` learns which source set each dotted key."""
    merged = dict(base)
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, origins, source, f"{dotted}.")
        else:
            merged[key] = value
            origins[dotted] = source
    return merged


def defaults_text() -> str:
    return resources.files("config").joinpath("defaults.toml").read_text(encoding="utf-8")


def env_overrides(environ: Mapping[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``PARLEY_SECTION__KEY=value`` variables as ``{name: (name, {"section": {"key": v}})}``.

    A value is read as a TOML value when it is one (``9000``, ``true``, ``["a", "b"]``,
    ``"quoted"``), otherwise taken as a plain string (``0.0.0.0``). Variables without the
    double underscore (``PARLEY_EVALSET``) are not configuration."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)]
        raw = environ[name]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        nested: dict[str, Any] = {path[-1]: value}
        for part in reversed(path[:-1]):
            nested = {part: nested}
        found[name] = (name, nested)
    return found


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults, then ``path``, then ``PARLEY_*__*`` variables of ``environ`` (only when given:
    tests stay hermetic), then ``overrides`` (``{"server": {"port": 1}}``-shaped)."""
    origins: dict[str, str] = {}
    data = tomllib.loads(defaults_text())
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            data = _merge(data, tomllib.loads(text), origins, str(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    for name, nested in (env_overrides(environ) if environ is not None else {}).values():
        data = _merge(data, nested, origins, f"environment {name}")
    data = _merge(data, overrides, origins, "command line")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, origins, path) for e in exc.errors()]
        where = f" in {path}" if path else ""
        raise ConfigError(
            f"invalid configuration{where}:\n  " + "\n  ".join(problems), problems
        ) from exc


def _describe(error: Any, origins: Mapping[str, str], path: Path | None) -> str:
    """``source: key: reason`` for one pydantic error."""
    key = ".".join(str(p) for p in error["loc"])
    source = _origin(key, origins) or (str(path) if path is not None else "defaults")
    if not key:  # a check across sections: its message names the keys
        return f"{source if path is None else path}: {error['msg'].removeprefix('Value error, ')}"
    if error["type"] == "extra_forbidden":
        reason = "unknown key"
        section = key.rsplit(".", 1)[0] if "." in key else None
        if section is not None:
            reason += f" in [{section}] (see `parley defaults`)"
    else:
        reason = str(error["msg"]).removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict):
            reason += f" (got {error['input']!r})"
    return f"{source}: {key}: {reason}"


def _origin(key: str, origins: Mapping[str, str]) -> str | None:
    """The source that set ``key`` or the deepest of its parents or children."""
    while True:
        if key in origins:
            return origins[key]
        children = [v for k, v in origins.items() if k.startswith(f"{key}.")]
        if children:
            return children[0]
        if "." not in key:
            return None
        key = key.rsplit(".", 1)[0]

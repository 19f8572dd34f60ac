"""Argos Translate packages, installed and run without ``argostranslate``.

An ``.argosmodel`` is a zip of one directory holding ``metadata.json`` (``from_code``,
``to_code``, …), ``model/`` (a CTranslate2 model) and ``sentencepiece.model`` (plus an optional
``stanza/`` for sentence splitting, which we do not use). Installed packages sit one directory
each in a packages directory, the same layout as ``argostranslate.package`` uses, so either
tool sees what the other installed.

Why not ``argostranslate`` itself: ``argostranslate.translate`` imports stanza and therefore torch
(≈ 4.5 s, ≈ 740 MB RSS), and its sentence splitter without ``stanza/`` downloads a model on first
use; even ``argostranslate.package.install_from_path`` imports ``argostranslate.translate``
after extracting. Caption segments are already sentence-sized, so we run ``model/`` with
``ctranslate2.Translator`` and ``sentencepiece.model`` directly, with the decoding options
Argos uses (``replace_unknowns``, ``length_penalty=0.2``, the package's ``target_prefix``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import ctranslate2
import sentencepiece

from .translate import PackageError, TranslationError, TranslatorClosedError, normalize_lang

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
MODEL_DIR = "model"
SENTENCEPIECE_FILE = "sentencepiece.model"
#: refuse archives that unpack to more than this (a zip bomb would fill the disk)
MAX_UNPACKED_BYTES = 4 * 1024**3
_SPACE_MARK = "\u2581"  # SentencePiece's word-start mark


@dataclass(frozen=True, slots=True)
class ArgosSettings:
    """Knobs of :class:`ArgosTranslator` (CTranslate2's names)."""

    beam_size: int = 4
    #: batches run in parallel; 1 keeps the footprint predictable next to Whisper
    inter_threads: int = 1
    #: threads inside one batch
    intra_threads: int = 1
    device: str = "cpu"
    compute_type: str = "default"
    #: cap on output tokens
    max_decoding_length: int = 256
    #: and on output tokens per input token (+ 16): a model stuck repeating itself stops early
    #: instead of burning max_decoding_length steps on a live caption
    max_decoding_ratio: float = 3.0


@dataclass(frozen=True, slots=True)
class InstalledPackage:
    """An installed Argos translation package (a directory in a packages directory)."""

    path: Path
    from_code: str
    to_code: str
    from_name: str = ""
    to_name: str = ""
    package_version: str = ""
    #: token the decoder must start with (multilingual models); "" for none
    target_prefix: str = ""

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def sentencepiece_path(self) -> Path:
        return self.path / SENTENCEPIECE_FILE

    def __str__(self) -> str:
        version = f" {self.package_version}" if self.package_version else ""
        return f"argos {self.from_code}→{self.to_code}{version} ({self.path.name})"


def default_argos_packages_dir() -> Path:
    """Where ``argostranslate`` keeps packages.

    ``$ARGOS_PACKAGES_DIR``, else ``$XDG_DATA_HOME/argos-translate/packages``, else
    ``~/.local/share/argos-translate/packages``.
    """
    explicit = os.environ.get("ARGOS_PACKAGES_DIR")
    if explicit:
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "argos-translate" / "packages"


def _package_from_metadata(path: Path, metadata: object, *, label: str) -> InstalledPackage:
    where = f"{METADATA_FILE} of {label}"
    if not isinstance(metadata, Mapping):
        raise PackageError(f"{where} is not a JSON object")
    kind = metadata.get("type", "translate")
    if kind != "translate":
        raise PackageError(f"{label} is an Argos {kind!r} package, not a translation package")
    fields: dict[str, str] = {}
    for key in ("from_code", "to_code", "from_name", "to_name", "package_version"):
        value = metadata.get(key, "")
        if not isinstance(value, str):
            raise PackageError(f"{where}: {key} is not a string")
        fields[key] = value
    prefix = metadata.get("target_prefix", "")
    if not isinstance(prefix, str):
        raise PackageError(f"{where}: target_prefix is not a string")
    codes = []
    for key in ("from_code", "to_code"):
        try:
            codes.append(normalize_lang(fields[key]))
        except ValueError as exc:
            raise PackageError(f"{where}: {key} missing or invalid ({exc})") from exc
    return InstalledPackage(
        path=path,
        from_code=codes[0],
        to_code=codes[1],
        from_name=fields["from_name"],
        to_name=fields["to_name"],
        package_version=fields["package_version"],
        target_prefix=prefix,
    )


def read_argos_package(path: Path) -> InstalledPackage:
    """The installed package at ``path``, checked.

    Raises:
        PackageError: not a translation package this module can run.
    """
    try:
        metadata = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"{path}: unreadable {METADATA_FILE}: {exc}") from exc
    package = _package_from_metadata(path, metadata, label=str(path))
    if not (package.model_dir / "model.bin").is_file():
        raise PackageError(f"{path}: no CTranslate2 model ({MODEL_DIR}/model.bin)")
    if not package.sentencepiece_path.is_file():
        raise PackageError(f"{path}: no {SENTENCEPIECE_FILE} (BPE packages are not supported)")
    return package


def list_argos_packages(packages_dir: Path | None = None) -> list[InstalledPackage]:
    """Installed translation packages, sorted by pair; broken ones are logged and left out."""
    root = default_argos_packages_dir() if packages_dir is None else packages_dir
    if not root.is_dir():
        return []
    packages = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue  # ".installing-*": an install in progress
        try:
            packages.append(read_argos_package(entry))
        except PackageError as exc:
            log.warning("ignoring Argos package: %s", exc)
    return sorted(packages, key=lambda p: (p.from_code, p.to_code, p.path.name))


def _archive_layout(archive: zipfile.ZipFile, name: str) -> tuple[str, list[zipfile.ZipInfo]]:
    """The package's folder inside the zip ("" if at the root) and its file members.

    Rejects absolute paths, ``..``, links and anything outside the package folder.
    """
    members: list[zipfile.ZipInfo] = []
    total = 0
    for info in archive.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise PackageError(f"{name}: unsafe path in archive: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise PackageError(f"{name}: archive contains a link: {info.filename!r}")
        total += info.file_size
        if not info.is_dir():
            members.append(info)
    if total > MAX_UNPACKED_BYTES:
        raise PackageError(f"{name}: unpacks to {total} bytes, over {MAX_UNPACKED_BYTES}")
    # the package folder is where the shallowest metadata.json is (argos zips: "<name>/")
    tops = [m for m in members if m.filename == METADATA_FILE]
    if not tops:
        tops = [
            m
            for m in members
            if PurePosixPath(m.filename).name == METADATA_FILE
            and len(PurePosixPath(m.filename).parts) == 2
        ]
    if len(tops) != 1:
        raise PackageError(f"{name}: expected one {METADATA_FILE} at the top of the package")
    root = tops[0].filename[: -len(METADATA_FILE)].rstrip("/")
    prefix = f"{root}/" if root else ""
    if any(not m.filename.startswith(prefix) for m in members):
        raise PackageError(f"{name}: files outside the package folder {root!r}")
    names = {m.filename[len(prefix) :] for m in members}
    if f"{MODEL_DIR}/model.bin" not in names:
        raise PackageError(f"{name}: no CTranslate2 model ({MODEL_DIR}/model.bin)")
    if SENTENCEPIECE_FILE not in names:
        raise PackageError(f"{name}: no {SENTENCEPIECE_FILE} (BPE packages are not supported)")
    return root, members


def install_argos_package(
    archive_path: Path, packages_dir: Path | None = None, *, replace: bool = True
) -> InstalledPackage:
    """Install an ``.argosmodel`` file into ``packages_dir`` (default: Argos's own).

    The archive is checked first (metadata, model, tokenizer, no path traversal), unpacked
    into a hidden folder and renamed into place, so a failed install leaves nothing behind.
    An installed package for the same pair is replaced (``replace=False``: an error).

    Raises:
        PackageError: the file is not a valid translation package, or the pair is installed.
    """
    root_dir = default_argos_packages_dir() if packages_dir is None else packages_dir
    name = archive_path.name
    if not zipfile.is_zipfile(archive_path):
        raise PackageError(f"{name}: not an Argos package (not a zip archive)")
    root_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive_path) as archive:
        root, members = _archive_layout(archive, name)
        prefix = f"{root}/" if root else ""
        try:
            metadata: Any = json.loads(archive.read(prefix + METADATA_FILE))
        except ValueError as exc:
            raise PackageError(f"{name}: {METADATA_FILE} is not JSON: {exc}") from exc
        staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=root_dir))
        try:
            probe = _package_from_metadata(staging, metadata, label=name)
            # a hidden folder would be skipped by list_argos_packages (staging lives there)
            folder = (
                root
                if root and not root.startswith(".")
                else (f"translate-{probe.from_code}_{probe.to_code}")
            )
            for info in members:
                target = staging.joinpath(*PurePosixPath(info.filename[len(prefix) :]).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
            read_argos_package(staging)
            installed = _swap_in(staging, root_dir, folder, probe, replace=replace)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    log.info("installed %s", installed)
    return installed


def _swap_in(
    staging: Path, root_dir: Path, folder: str, probe: InstalledPackage, *, replace: bool
) -> InstalledPackage:
    same_pair = [
        p
        for p in list_argos_packages(root_dir)
        if (p.from_code, p.to_code) == (probe.from_code, probe.to_code)
    ]
    final = root_dir / folder
    if not replace and (same_pair or final.exists()):
        raise PackageError(
            f"an Argos package for {probe.from_code}→{probe.to_code} is already installed"
        )
    old = [p.path for p in same_pair]
    if final.exists() and final not in old:
        old.append(final)
    retired = []
    for path in old:
        tomb = Path(tempfile.mkdtemp(prefix=".removing-", dir=root_dir))
        path.rename(tomb / "package")
        retired.append(tomb)
    try:
        staging.rename(final)
    except OSError:
        for path, tomb in zip(old, retired, strict=True):
            (tomb / "package").rename(path)
            tomb.rmdir()
        raise
    for tomb in retired:
        shutil.rmtree(tomb)
    return read_argos_package(final)


def remove_argos_package(package: InstalledPackage) -> None:
    """Delete an installed package's directory."""
    shutil.rmtree(package.path)


class ArgosTranslator:
    """One Argos package run with CTranslate2; loaded once. Thread-safe (CTranslate2 queues
    concurrent batches onto its ``inter_threads`` workers)."""

    name = "argos"

    def __init__(
        self, package: InstalledPackage | Path, *, settings: ArgosSettings | None = None
    ) -> None:
        self.package = (
            package if isinstance(package, InstalledPackage) else read_argos_package(package)
        )
        self.settings = s = settings or ArgosSettings()
        try:
            self._tokenizer = sentencepiece.SentencePieceProcessor(
                model_file=str(self.package.sentencepiece_path)
            )
            self._model: ctranslate2.Translator | None = ctranslate2.Translator(
                str(self.package.model_dir),
                device=s.device,
                compute_type=s.compute_type,
                inter_threads=s.inter_threads,
                intra_threads=s.intra_threads,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise PackageError(f"cannot load {self.package}: {exc}") from exc
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        return self.package.from_code

    @property
    def target(self) -> str:
        return self.package.to_code

    def translate(self, text: str) -> str:
        return self.translate_many([text])[0]

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        """One CTranslate2 batch for all non-blank texts; blank texts → ``""``."""
        model = self._model
        if model is None:
            raise TranslatorClosedError(f"{self.package} is closed")
        sources = [" ".join(text.split()) for text in texts]
        todo = [i for i, text in enumerate(sources) if text]
        results = [""] * len(texts)
        if not todo:
            return results
        tokens = [self._tokenizer.encode(sources[i], out_type=str) for i in todo]
        prefix = self.package.target_prefix
        longest = max(len(t) for t in tokens)
        max_length = int(longest * self.settings.max_decoding_ratio) + 16
        try:
            batches = model.translate_batch(
                tokens,
                target_prefix=[[prefix] for _ in todo] if prefix else None,
                beam_size=self.settings.beam_size,
                max_decoding_length=min(self.settings.max_decoding_length, max_length),
                replace_unknowns=True,
                length_penalty=0.2,
            )
        except RuntimeError as exc:  # CTranslate2's errors (out of memory, a bad model, …)
            raise TranslationError(f"{self.package}: {exc}") from exc
        for i, batch in zip(todo, batches, strict=True):
            pieces = list(batch.hypotheses[0])
            if prefix and pieces[:1] == [prefix]:
                pieces = pieces[1:]
            decoded = self._tokenizer.decode_pieces(pieces)
            results[i] = decoded.replace(_SPACE_MARK, " ").strip()
        return results

    def close(self) -> None:
        with self._lock:
            model, self._model = self._model, None
        if model is not None:
            model.unload_model()

    def __enter__(self) -> ArgosTranslator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

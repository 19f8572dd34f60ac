"""Argos, the real code path: a tiny ``.argosmodel`` built here, installed, listed, loaded, run."""

from __future__ import annotations

import json
import os
import stat
import statistics
import time
import zipfile
from pathlib import Path

import pytest
import sentencepiece

from interpret.translate import PackageError, TranslatorClosedError
from interpret.translate_argos import (
    ArgosSettings,
    ArgosTranslator,
    default_argos_packages_dir,
    install_argos_package,
    list_argos_packages,
    remove_argos_package,
)
from tests.support.argos import build_tiny_argos_package


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_argos_package(tmp_path_factory.mktemp("argos"))


def test_install_list_load_translate(archive: Path, tmp_path: Path) -> None:
    packages_dir = tmp_path / "packages"
    installed = install_argos_package(archive, packages_dir)
    assert (installed.from_code, installed.to_code) == ("en", "de")
    assert installed.path == packages_dir / "translate-en_de-1_0"
    assert list_argos_packages(packages_dir) == [installed]
    assert [p.name for p in packages_dir.iterdir()] == ["translate-en_de-1_0"]

    with ArgosTranslator(installed) as translator:
        assert (translator.name, translator.source, translator.target) == ("argos", "en", "de")
        text = "The United Nations will hold an online dialogue."
        first = translator.translate(text)
        assert isinstance(first, str) and first
        latencies_ms = []
        for _ in range(10):
            start = time.perf_counter()
            assert translator.translate(text) == first  # deterministic
            latencies_ms.append((time.perf_counter() - start) * 1000)
        median_ms = statistics.median(latencies_ms)
        print(f"\nargos tiny (2 layers, d=16, beam 4): median {median_ms:.2f} ms")
        assert translator.translate("") == "" and translator.translate("  \n") == ""
        many = translator.translate_many(["Good morning.", "", "We will share the slides."])
        assert len(many) == 3 and many[1] == "" and all(isinstance(m, str) for m in many)
    with pytest.raises(TranslatorClosedError):
        translator.translate("hello")


def test_settings_reach_ctranslate2(archive: Path, tmp_path: Path) -> None:
    installed = install_argos_package(archive, tmp_path)
    settings = ArgosSettings(beam_size=1, intra_threads=2, max_decoding_length=5)
    with ArgosTranslator(installed.path, settings=settings) as translator:
        assert translator._model is not None
        assert translator._model.num_translators == 1
        assert len(translator.translate("Good morning, everyone.").split()) <= 5


def test_target_prefix(archive: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        processor = sentencepiece.SentencePieceProcessor(
            model_proto=zf.read("translate-en_de-1_0/sentencepiece.model")
        )
    piece = processor.id_to_piece(processor.get_piece_size() - 1)
    prefixed = build_tiny_argos_package(tmp_path, metadata={"target_prefix": piece})
    installed = install_argos_package(prefixed, tmp_path / "packages")
    assert installed.target_prefix == piece
    with ArgosTranslator(installed) as translator:
        assert isinstance(translator.translate("Good morning."), str)


def test_reinstall_replaces_the_pair(archive: Path, tmp_path: Path) -> None:
    install_argos_package(archive, tmp_path)
    newer = build_tiny_argos_package(
        tmp_path, folder="translate-en_de-1_1", metadata={"package_version": "1.1"}
    )
    installed = install_argos_package(newer, tmp_path)
    assert [p.package_version for p in list_argos_packages(tmp_path)] == ["1.1"]
    with pytest.raises(PackageError, match="already installed"):
        install_argos_package(archive, tmp_path, replace=False)
    remove_argos_package(installed)
    assert list_argos_packages(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # no staging leftovers


def test_metadata_at_the_archive_root(tmp_path: Path) -> None:
    archive = build_tiny_argos_package(tmp_path, from_code="eng", to_code="spa")
    flat = tmp_path / "flat.argosmodel"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(flat, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename.split("/", 1)[1], src.read(info))
    installed = install_argos_package(flat, tmp_path / "packages")
    assert installed.path.name == "translate-en_es" and installed.from_code == "en"


def _rewrite(
    archive: Path,
    out: Path,
    *,
    drop: str = "",
    add: dict[str, bytes] | None = None,
    metadata: object = None,
) -> Path:
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if drop and info.filename.endswith(drop):
                continue
            data = src.read(info)
            if metadata is not None and info.filename.endswith("metadata.json"):
                data = json.dumps(metadata).encode()
            dst.writestr(info, data)
        for name, data in (add or {}).items():
            dst.writestr(name, data)
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": "metadata.json"}, "metadata.json"),
        ({"drop": "model.bin"}, "model.bin"),
        ({"drop": "sentencepiece.model"}, "sentencepiece.model"),
        ({"metadata": {"from_code": "en"}}, "to_code"),
        ({"metadata": {"from_code": "en", "to_code": "de", "type": "sbd"}}, "sbd"),
        ({"metadata": ["not", "an", "object"]}, "JSON object"),
        ({"add": {"translate-en_de-1_0/../../evil.txt": b"x"}}, "unsafe path"),
        ({"add": {"/etc/evil.txt": b"x"}}, "unsafe path"),
        ({"add": {"elsewhere/file.txt": b"x"}}, "outside the package"),
    ],
)
def test_invalid_archives_are_rejected(
    archive: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    bad = _rewrite(archive, tmp_path / "bad.argosmodel", **change)  # type: ignore[arg-type]
    packages_dir = tmp_path / "packages"
    with pytest.raises(PackageError, match=message):
        install_argos_package(bad, packages_dir)
    assert not packages_dir.exists() or list(packages_dir.iterdir()) == []
    assert not (tmp_path.parent / "evil.txt").exists()


def test_links_and_non_zips_are_rejected(archive: Path, tmp_path: Path) -> None:
    link = zipfile.ZipInfo("translate-en_de-1_0/model/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = tmp_path / "link.argosmodel"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(link, "/etc/passwd")
    with pytest.raises(PackageError, match="link"):
        install_argos_package(bad, tmp_path / "packages")
    text = tmp_path / "plain.argosmodel"
    text.write_text("not a zip")
    with pytest.raises(PackageError, match="not a zip"):
        install_argos_package(text, tmp_path / "packages")


def test_broken_installed_packages_are_left_out_of_the_list(archive: Path, tmp_path: Path) -> None:
    install_argos_package(archive, tmp_path)
    (tmp_path / "half-copied").mkdir()
    (tmp_path / "half-copied" / "metadata.json").write_text("{")
    assert [p.to_code for p in list_argos_packages(tmp_path)] == ["de"]
    assert list_argos_packages(tmp_path / "missing") == []


def test_default_packages_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ARGOS_PACKAGES_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_argos_packages_dir() == tmp_path / "argos-translate" / "packages"
    monkeypatch.delenv("XDG_DATA_HOME")
    expected = Path(os.path.expanduser("~/.local/share/argos-translate/packages"))
    assert default_argos_packages_dir() == expected
    monkeypatch.setenv("ARGOS_PACKAGES_DIR", str(tmp_path / "argos"))
    assert default_argos_packages_dir() == tmp_path / "argos"

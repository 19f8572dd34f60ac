"""`make run` installs the translation pairs the default configuration uses, and the server says
at start what it can translate.

The install script (scripts/translation-deps.sh) runs here with fake ``apt-get``, ``sudo`` and
``id`` (shell stubs that record their arguments; PATH holds nothing else, so no real package
manager is ever reached) and a fake Apertium modes directory (``APERTIUM_MODES_DIR``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interpret.translate_apertium import ApertiumMode
from interpret.translate_router import EngineRegistry, Hop, TranslationRouter, translation_coverage
from tests.support.paths import REPO
from tests.support.server import ServerProcess
from tests.support.waits import TIME_SCALE

SCRIPT = REPO / "scripts" / "translation-deps.sh"
DEFAULT_PAIRS = ("eng-spa", "fr-es", "es-pt")
EVERYTHING = ["apertium", "apertium-eng-spa", "apertium-fr-es", "apertium-es-pt"]


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


def run_script(
    tmp_path: Path,
    *,
    uid: int,
    present_pairs: tuple[str, ...] = (),
    apertium: bool = False,
    apt_get: bool = True,
    sudo: bool = True,
    apt_status: int = 0,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir, modes = tmp_path / "bin", tmp_path / "modes"
    bin_dir.mkdir()
    modes.mkdir()
    for pair in present_pairs:
        (modes / f"{pair}.mode").write_text("lt-proc x.bin\n")
    stub(bin_dir, "id", f'[ "$1" = "-u" ] && echo {uid}')
    if apt_get:
        stub(bin_dir, "apt-get", f"exit {apt_status}")
    if sudo:  # sudo VAR=value cmd args: run it as the real one would (the stub records first)
        stub(bin_dir, "sudo", 'exec /usr/bin/env "$@"')
    if apertium:
        stub(bin_dir, "apertium", "exit 0")
    calls = tmp_path / "calls"
    calls.touch()
    env = {"PATH": str(bin_dir), "APERTIUM_MODES_DIR": str(modes), "CALLS": str(calls)}
    done = subprocess.run(
        ["/bin/sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30
    )
    return done, calls.read_text().splitlines()


def test_a_fresh_machine_installs_every_default_pair_with_sudo(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, uid=1000)
    assert done.returncode == 0, done.stderr
    install = "apt-get install -y -q --no-install-recommends " + " ".join(EVERYTHING)
    assert [c for c in calls if not c.startswith("id")] == [
        "sudo DEBIAN_FRONTEND=noninteractive apt-get update -q",
        "apt-get update -q",
        f"sudo DEBIAN_FRONTEND=noninteractive {install}",
        install,
    ]


def test_root_installs_exactly_the_missing_pairs_without_sudo(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, uid=0, apertium=True, present_pairs=("eng-spa",))
    assert done.returncode == 0, done.stderr
    assert [c for c in calls if not c.startswith("id")] == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends apertium-fr-es apertium-es-pt",
    ]
    assert "apertium-fr-es apertium-es-pt" in done.stdout


def test_nothing_is_installed_nor_updated_when_all_is_present(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, uid=1000, apertium=True, present_pairs=DEFAULT_PAIRS)
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c.startswith(("apt-get", "sudo"))]
    assert "present" in done.stdout


def test_without_apt_get_it_says_so_and_does_nothing(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, uid=1000, apt_get=False)
    assert done.returncode == 0
    assert "apt-get is not available" in done.stdout + done.stderr
    assert "apertium-eng-spa" in done.stdout + done.stderr  # what to install by other means
    assert not [c for c in calls if c.startswith(("apt-get", "sudo"))]


def test_a_failed_install_or_no_sudo_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    done, _ = run_script(tmp_path / "a", uid=0, apt_status=100)
    assert done.returncode != 0
    (tmp_path / "b").mkdir()
    done, calls = run_script(tmp_path / "b", uid=1000, sudo=False)
    assert done.returncode != 0 and "sudo" in done.stderr
    assert not [c for c in calls if c.startswith("apt-get")]


def test_make_run_installs_the_pairs_before_starting_the_server() -> None:
    done = subprocess.run(
        ["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    deps = [i for i, line in enumerate(lines) if "scripts/translation-deps.sh" in line]
    serve = [i for i, line in enumerate(lines) if "parley serve" in line]
    assert deps and serve and deps[0] < serve[0], done.stdout


def test_system_deps_uses_the_translation_script() -> None:
    assert "translation-deps.sh" in (REPO / "scripts" / "system-deps.sh").read_text()


# -- what the server says at start -----------------------------------------------------------------
def apertium_hop(source: str, target: str) -> Hop:
    mode = ApertiumMode(f"{source}-{target}", Path(f"/x/{source}-{target}.mode"), source, target)
    return Hop("apertium", source, target, mode)


def test_coverage_names_the_languages_nothing_translates_into() -> None:
    langs = ["en", "es", "fr", "pt"]
    fresh = translation_coverage(TranslationRouter(EngineRegistry()), langs)
    assert fresh.pairs == () and fresh.untranslatable == ("en", "es", "fr", "pt")
    only_eng_spa = TranslationRouter(EngineRegistry([apertium_hop("en", "es")]))
    assert translation_coverage(only_eng_spa, langs).untranslatable == ("en", "fr", "pt")
    # the default pairs: fr and pt through Spanish
    hops = [apertium_hop(a, b) for a, b in [("en", "es"), ("es", "en"), ("fr", "es"), ("es", "fr")]]
    hops += [apertium_hop("es", "pt"), apertium_hop("pt", "es")]
    full = translation_coverage(TranslationRouter(EngineRegistry(hops)), langs)
    assert full.untranslatable == ()
    assert "apertium en→es" in full.pairs and len(full.pairs) == 6


def test_serve_logs_pairs_and_languages_without_translation(tmp_path: Path) -> None:
    """`parley serve` with captions: one info line with the installed pairs (this machine has
    the default Apertium pairs: make system-deps), one warning naming the configured language
    nothing translates into."""
    config = (
        '[captions]\nenabled = true\nmodel = "tiny.en"\ntranslation_engines = ["apertium"]\n'
        'translation_languages = ["en", "es", "fr", "pt", "ja"]\n'
    )
    parley = Path(sys.executable).parent / "parley"
    server = ServerProcess(
        tmp_path, config, port=0, host=None, command=[str(parley), "serve"], env=os.environ
    )
    server.start(wait=False)  # the lines are logged at start, before the models are loaded
    try:
        deadline = time.monotonic() + 120 * TIME_SCALE
        while "caption languages without translation" not in server.log_text():
            assert server.alive() and time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)  # polling another process's log: there is no event to wait on
    finally:
        server.stop(timeout_s=30)
    seen = server.log_text().splitlines(keepends=True)
    info = [line for line in seen if "translation pairs available" in line]
    warning = [line for line in seen if "caption languages without translation" in line]
    assert info and warning, "".join(seen)
    assert "apertium en→es" in info[0] and "apertium es→pt" in info[0]
    assert "languages=['ja']" in warning[0], warning[0]
    assert "warn" in warning[0].lower()


@pytest.mark.parametrize("lang", ["EN", "english", "e"])
def test_translation_languages_are_checked(tmp_path: Path, lang: str) -> None:
    from server.settings import ConfigError, load_settings

    config = tmp_path / "parley.toml"
    config.write_text(f'[captions]\ntranslation_languages = ["{lang}"]\n')
    with pytest.raises(ConfigError):
        load_settings(config, environ={})

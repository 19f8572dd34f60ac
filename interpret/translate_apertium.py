"""Apertium (rule-based, Debian packages) as a persistent pipeline: a few ms a sentence.

``apertium eng-spa`` starts a dozen processes per call (0.16–0.25 s). Instead we read the pair's
``.mode`` file (a shell pipeline), start its programs once with ``-z`` (null flush: each stage
flushes its output when it reads a NUL) and keep them running. One request is the text in
Apertium's stream format, ended by ``\\n\\0``; its answer is everything up to the next NUL.

Stream format: ``[]^$/\\@<>{}`` are escaped with a backslash; ``~`` (the post-generation mark)
cannot be escaped and travels as a superblank ``[~]``, as ``apertium-destxt`` does. The
generator runs with ``-n`` (what ``apertium -u`` does): unknown words come back as themselves,
without the ``*``/``#``/``@`` marks (``mark_unknown=True`` keeps them, ``-g``).
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .translate import (
    EngineUnavailableError,
    TranslationError,
    TranslationTimeoutError,
    TranslatorClosedError,
    normalize_lang,
)

log = logging.getLogger(__name__)

#: where Debian (and ``make install`` from source) put the installed pairs' modes
DEFAULT_MODE_DIRS: tuple[Path, ...] = (
    Path("/usr/share/apertium/modes"),
    Path("/usr/local/share/apertium/modes"),
)

_SPECIAL = frozenset("[]^$/\\@<>{}")
_UNESCAPE_RE = re.compile(r"\\(.)|[\[\]]", re.DOTALL)
_MODE_NAME_RE = re.compile(r"([a-z]{2,3})-([a-z]{2,3})")
#: a stage's stderr is kept for error messages; past this size it is emptied
_STDERR_KEEP_BYTES = 64 * 1024
_READ_BYTES = 65_536
#: a fresh pipeline's first request: it returns once every stage has loaded
_WARM_REQUEST = b"a\n\0"


@dataclass(frozen=True, slots=True)
class ApertiumSettings:
    """Knobs of :class:`ApertiumTranslator`."""

    #: deadline for one text; past it the pipeline is restarted and the call fails (retryable)
    timeout_s: float = 5.0
    #: deadline for a fresh pipeline's first answer (every stage loads its transducers first:
    #: ≈ 0.1–0.4 s), so that a restart does not eat into a text's own deadline
    start_timeout_s: float = 30.0
    #: keep Apertium's unknown-word marks (``*word``, ``#word``, ``@word``): for diagnostics
    mark_unknown: bool = False


@dataclass(frozen=True, slots=True)
class ApertiumMode:
    """One installed pair: its ``.mode`` file and languages (normalized, e.g. ``eng`` → ``en``)."""

    name: str
    path: Path
    source: str
    target: str

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, source: str | None = None, target: str | None = None
    ) -> ApertiumMode:
        """A mode file; languages from its name (``eng-spa.mode``) unless given.

        Raises:
            ValueError: the name says no pair (``eco-es-fr``, ``es-pt_BR``) and none was given.
        """
        path = Path(path)
        pair = parse_mode_name(path.stem)
        if source is None or target is None:
            if pair is None:
                raise ValueError(f"cannot tell the languages of Apertium mode {path.name!r}")
            source, target = pair
        return cls(path.stem, path, normalize_lang(source), normalize_lang(target))


def parse_mode_name(name: str) -> tuple[str, str] | None:
    """``"eng-spa"`` → ``("en", "es")``; variants (``es-pt_BR``, ``eco-es-fr``) → None."""
    match = _MODE_NAME_RE.fullmatch(name)
    if match is None:
        return None
    return normalize_lang(match[1]), normalize_lang(match[2])


def pipeline_commands(mode_text: str, *, mark_unknown: bool = False) -> list[list[str]]:
    """The argv of each stage of a ``.mode`` pipeline, ``-z`` after each program name.

    ``$1`` (the generator's option) becomes ``-n`` (``-g`` with ``mark_unknown``); ``$2`` (the
    tagger's extra option) is dropped.

    Raises:
        ValueError: the mode is not a plain pipeline of commands.
    """
    lexer = shlex.shlex(" ".join(mode_text.split()), posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split = True
    stages: list[list[str]] = [[]]
    for token in lexer:
        if token == "|":
            stages.append([])
        elif token == "$1":
            stages[-1].append("-g" if mark_unknown else "-n")
        elif token == "$2":
            continue
        elif set(token) <= set("|&;<>()") or token.startswith("$"):
            raise ValueError(f"unsupported shell syntax {token!r} in Apertium mode")
        else:
            stages[-1].append(token)
    if any(not stage for stage in stages):
        raise ValueError("empty stage in Apertium mode")
    return [[stage[0], "-z", *stage[1:]] for stage in stages]


def discover_apertium_modes(dirs: Iterable[Path] = DEFAULT_MODE_DIRS) -> list[ApertiumMode]:
    """The runnable pairs in ``dirs``, one per language pair (the first found wins).

    Variants (``es-pt_BR``, ``eco-es-fr``) are left out; so are modes whose programs are not on
    ``PATH``.
    """
    found: dict[tuple[str, str], ApertiumMode] = {}
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.mode")):
            pair = parse_mode_name(path.stem)
            if pair is None or pair in found:
                continue
            try:
                stages = pipeline_commands(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                log.warning("skipping Apertium mode %s: %s", path, exc)
                continue
            missing = sorted({s[0] for s in stages if shutil.which(s[0]) is None})
            if missing:
                log.warning("skipping Apertium mode %s: %s not found", path, ", ".join(missing))
                continue
            found[pair] = ApertiumMode(path.stem, path, *pair)
    return list(found.values())


def escape(text: str) -> str:
    """Text → Apertium stream format (one line; a NUL would end the request early)."""
    out: list[str] = []
    for char in " ".join(text.replace("\0", " ").split()):
        if char in _SPECIAL:
            out.append("\\" + char)
        elif char == "~":
            out.append("[~]")
        else:
            out.append(char)
    return "".join(out)


def unescape(stream: str) -> str:
    """Apertium stream format → text: drop escapes and superblank brackets."""
    return _UNESCAPE_RE.sub(lambda m: m[1] or "", stream)


class _Pipeline:
    """The running processes of one mode: first stage's stdin → … → last stage's stdout."""

    def __init__(self, commands: Sequence[Sequence[str]]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        # one unlinked O_APPEND file for all stages' stderr: read back when the pipeline fails
        fd, path = tempfile.mkstemp(prefix="parley-apertium-", suffix=".stderr")
        os.close(fd)
        self.stderr_fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        os.unlink(path)
        try:
            upstream: int = subprocess.PIPE
            for argv in commands:
                proc = subprocess.Popen(
                    list(argv), stdin=upstream, stdout=subprocess.PIPE, stderr=self.stderr_fd
                )
                if self.procs:
                    # the next stage holds it now: a dead stage is seen as EOF downstream
                    assert self.procs[-1].stdout is not None
                    self.procs[-1].stdout.close()
                self.procs.append(proc)
                assert proc.stdout is not None
                upstream = proc.stdout.fileno()
        except OSError as exc:
            self.kill()
            raise EngineUnavailableError(
                f"cannot start Apertium program {exc.filename or ''!s}: {exc.strerror} "
                "(install apertium and the pair's package, e.g. apertium-eng-spa)"
            ) from exc
        first, last = self.procs[0], self.procs[-1]
        assert first.stdin is not None and last.stdout is not None
        self.stdin_fd, self.stdout_fd = first.stdin.fileno(), last.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def exchange(self, request: bytes, deadline: float) -> bytes:
        """Write ``request``, return the answer up to (without) its NUL.

        Writes and reads interleave, so a long text cannot fill both pipes and deadlock.
        """
        pending = memoryview(request)
        answer = bytearray()
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdin_fd, selectors.EVENT_WRITE)
            selector.register(self.stdout_fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TranslationTimeoutError("Apertium did not answer in time")
                for key, _ in selector.select(remaining):
                    if key.fd == self.stdin_fd:
                        try:
                            written = os.write(self.stdin_fd, pending[:_READ_BYTES])
                        except BlockingIOError:
                            continue
                        pending = pending[written:]
                        if not pending:
                            selector.unregister(self.stdin_fd)
                        continue
                    chunk = os.read(self.stdout_fd, _READ_BYTES)
                    if not chunk:
                        raise BrokenPipeError("Apertium pipeline closed its output")
                    answer += chunk
                    if answer.endswith(b"\0"):
                        # every stage passes our "\n" through before the NUL; a NUL without
                        # it is a stage flushing at EOF because the one before it died
                        if pending or answer.count(b"\0") != 1 or not answer.endswith(b"\n\0"):
                            raise TranslationError("Apertium pipeline out of step")
                        if not self.alive():
                            raise TranslationError("an Apertium stage exited")
                        return bytes(answer[:-2])

    def stderr_tail(self) -> str:
        size = os.fstat(self.stderr_fd).st_size
        tail = os.pread(self.stderr_fd, 500, max(0, size - 500))
        return tail.decode("utf-8", "replace").strip()

    def trim_stderr(self) -> None:
        if os.fstat(self.stderr_fd).st_size > _STDERR_KEEP_BYTES:
            os.ftruncate(self.stderr_fd, 0)

    def kill(self) -> None:
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs.clear()
        if self.stderr_fd >= 0:
            os.close(self.stderr_fd)
            self.stderr_fd = -1


class ApertiumTranslator:
    """One Apertium pair as a persistent pipeline. Thread-safe (one request at a time).

    The pipeline starts (and is warmed) in the constructor unless ``warm=False``. One that died
    is restarted on the next call (and the call retried once); a timeout kills it and raises
    :class:`TranslationTimeoutError`. ``restarts`` counts the pipelines thrown away.
    """

    name = "apertium"

    def __init__(
        self,
        mode: ApertiumMode | str | os.PathLike[str],
        *,
        settings: ApertiumSettings | None = None,
        warm: bool = True,
    ) -> None:
        self.mode = mode if isinstance(mode, ApertiumMode) else ApertiumMode.from_path(mode)
        self.settings = settings or ApertiumSettings()
        try:
            mode_text = self.mode.path.read_text(encoding="utf-8")
            self._commands = pipeline_commands(mode_text, mark_unknown=self.settings.mark_unknown)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise EngineUnavailableError(f"Apertium mode {self.mode.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._pipeline: _Pipeline | None = None
        self._closed = False
        self.restarts = 0
        if warm:
            with self._lock:
                self._running_pipeline_locked()

    @property
    def source(self) -> str:
        return self.mode.source

    @property
    def target(self) -> str:
        return self.mode.target

    def translate(self, text: str) -> str:
        """Translate one text; whitespace runs (newlines too) become one space; blank → ``""``."""
        request = escape(text)
        if not request:
            return ""
        payload = (request + "\n\0").encode("utf-8")
        with self._lock:
            answer = self._exchange_locked(payload)
        return unescape(answer.decode("utf-8", "replace")).strip()

    def translate_many(self, texts: Sequence[str]) -> list[str]:
        """One request per text (the pipeline is sequential; no batching gain)."""
        return [self.translate(text) for text in texts]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pipeline is not None:
                self._pipeline.kill()
                self._pipeline = None

    def __enter__(self) -> ApertiumTranslator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _exchange_locked(self, payload: bytes) -> bytes:
        for attempt in (1, 2):
            pipeline = self._running_pipeline_locked()
            deadline = time.monotonic() + self.settings.timeout_s
            try:
                return pipeline.exchange(payload, deadline)
            except TranslationTimeoutError:
                self._discard_locked(f"timed out after {self.settings.timeout_s} s")
                raise
            except (OSError, TranslationError) as exc:
                detail = pipeline.stderr_tail() or str(exc)
                self._discard_locked(detail)
                if attempt == 2:
                    raise EngineUnavailableError(
                        f"Apertium {self.mode.name} failed twice: {detail}"
                    ) from exc
        raise AssertionError("unreachable")

    def _running_pipeline_locked(self) -> _Pipeline:
        if self._closed:
            raise TranslatorClosedError(f"Apertium {self.mode.name} is closed")
        pipeline = self._pipeline
        if pipeline is not None and not pipeline.alive():
            self._discard_locked(pipeline.stderr_tail() or "a stage exited")
            pipeline = None
        if pipeline is None:
            pipeline = _Pipeline(self._commands)
            try:
                pipeline.exchange(_WARM_REQUEST, time.monotonic() + self.settings.start_timeout_s)
            except (OSError, TranslationError) as exc:
                detail = pipeline.stderr_tail() or str(exc)
                pipeline.kill()
                raise EngineUnavailableError(
                    f"Apertium {self.mode.name} did not start: {detail}"
                ) from exc
            self._pipeline = pipeline
        pipeline.trim_stderr()
        return pipeline

    def _discard_locked(self, why: str) -> None:
        if self._pipeline is not None:
            log.warning("restarting Apertium %s pipeline: %s", self.mode.name, why)
            self._pipeline.kill()
            self._pipeline = None
            self.restarts += 1

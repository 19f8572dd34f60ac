"""A headless Firefox ESR page driven by tests/browser/firefox/driver.mjs (puppeteer-core over
WebDriver BiDi, no geckodriver), with the part of Playwright's sync Page that the helpers of
tests/support/browser.py use (``evaluate``, ``wait_for_timeout``), so the same probes run in both
browsers."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

DRIVER_DIR = Path(__file__).resolve().parents[1] / "browser" / "firefox"
FIREFOX = Path("/usr/bin/firefox-esr")
CALL_TIMEOUT_S = 60.0
#: the source of a function (called with the argument), not an expression
FUNCTION_SOURCE = re.compile(r"\s*(async\s+)?(function\b|(\([^()]*\)|\w+)\s*=>)")


def install_driver() -> None:
    """``npm ci`` the pinned puppeteer-core into tests/browser/firefox/node_modules (ignored by git)
    once; never downloads a browser (PUPPETEER_SKIP_DOWNLOAD)."""
    if (DRIVER_DIR / "node_modules" / "puppeteer-core" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm not installed (make system-deps)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DRIVER_DIR,
        env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
        check=True,
        timeout=600,
    )


class FirefoxPage:
    """One Firefox with one page, in the namespace of ``prefix`` (an nsenter command, or [])."""

    def __init__(self, prefix: list[str], log_path: Path) -> None:
        self._log = log_path.open("wb")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [*prefix, "node", str(DRIVER_DIR / "driver.mjs")],
            cwd=DRIVER_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "FIREFOX": str(FIREFOX)},
        )
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self._replies.put(json.loads(line))
        self._replies.put(None)

    def _call(self, cmd: str, timeout_s: float = CALL_TIMEOUT_S, **fields: Any) -> Any:
        self._next_id += 1
        assert self.proc.stdin is not None
        message = {"id": self._next_id, "cmd": cmd, **fields}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"firefox: no answer to {cmd} in {timeout_s} s") from None
        if reply is None:
            raise AssertionError(f"firefox driver exited:\n{self.log()}")
        assert reply["id"] == self._next_id, reply
        if not reply["ok"]:
            raise AssertionError(f"firefox: {cmd} failed: {reply['error']}")
        return reply.get("value")

    def goto(self, url: str) -> None:
        self._call("goto", url=url)

    def evaluate(self, js: str, arg: Any = None) -> Any:
        """Like Playwright's: a function's source is called with ``arg``; an expression is
        evaluated. Promises are awaited."""
        if not FUNCTION_SOURCE.match(js):
            js = f"() => ({js})"
        return self._call("eval", js=js, arg=arg)

    def wait_for_timeout(self, ms: float) -> None:
        time.sleep(ms / 1000)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call("close", timeout_s=20)
            except AssertionError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._log.close()

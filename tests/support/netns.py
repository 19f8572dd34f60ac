"""Private network namespaces for fault tests: made by the test, gone with it.

A namespace is held by a sleeping ``unshare -n`` process; commands run in it through
``nsenter`` (``prefix``), and the test process opens its own sockets there by switching the
calling thread's namespace for a moment (``entered()``: a socket keeps the namespace it was made
in). Needs root, util-linux and iproute2; a test that needs one fails without them (no skip).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000


def available() -> str | None:
    """Why no namespace can be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (unshare -n, ip link)"
    missing = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)}" if missing else None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


class Namespace:
    """A network namespace with only ``lo`` (up) until the test adds links."""

    def __init__(self) -> None:
        why = available()
        if why is not None:
            raise RuntimeError(f"a private network namespace {why}")
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && echo up && exec sleep 3600"],
            stdout=subprocess.PIPE,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != b"up":
            self.holder.wait()
            raise RuntimeError("unshare -n refused")

    @property
    def pid(self) -> int:
        return self.holder.pid

    @property
    def prefix(self) -> list[str]:
        """Prepend to a command to run it in this namespace (nsenter execs: same PID)."""
        return ["nsenter", "-t", str(self.pid), "-n"]

    def run(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread in the namespace (sockets made here stay in it)."""
        with (
            open("/proc/thread-self/ns/net", "rb") as home,
            open(f"/proc/{self.pid}/ns/net", "rb") as there,
        ):
            _setns(there.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        assert self.holder.stdout is not None
        self.holder.stdout.close()

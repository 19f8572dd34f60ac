"""Private network namespaces for tests: made by the test, gone with it.

A namespace is held by a sleeping ``unshare -n`` process; commands run in it through
``nsenter`` (``prefix``), and the test process opens its own sockets there by switching the
calling thread's namespace for a moment (``entered()``: a socket keeps the namespace it was made
in). Needs root, util-linux and iproute2; a test that needs one fails without them (no skip).
Browser tests take :meth:`Namespace.loopback_or_host` instead: isolated where possible, else the
host's namespace (the server still listens on loopback only).
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


# The holder brings ``lo`` up and turns IPv6 off for every link added to the namespace later
# (``lo`` keeps ::1). Otherwise a link that comes up gets a tentative fe80:: address, and when its
# duplicate-address detection ends a second or two later the kernel announces the address again:
# Chromium's network-change notifier takes that for a new network and fails every request in
# flight with ERR_NETWORK_CHANGED (a page whose modules were loading just then never starts; CI
# of 2026-12-07 lost two browser tests so). No test address here is IPv6.
_HOLDER = (
    "ip link set lo up"
    " && { [ ! -e /proc/sys/net/ipv6/conf/default/disable_ipv6 ]"
    " || echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; }"
    " && echo up && exec sleep 86400"
)


class Namespace:
    """A network namespace with only ``lo`` (up) until the test adds links; or, with
    ``isolated=False``, the test's own namespace (empty ``prefix``, ``entered()`` does nothing)."""

    def __init__(self, *, isolated: bool = True) -> None:
        self.holder: subprocess.Popen[bytes] | None = None
        if not isolated:
            return
        why = available()
        if why is not None:
            raise RuntimeError(f"a private network namespace {why}")
        holder = subprocess.Popen(["unshare", "-n", "sh", "-c", _HOLDER], stdout=subprocess.PIPE)
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != b"up":  # e.g. no CAP_SYS_ADMIN
            holder.wait()
            holder.stdout.close()
            raise RuntimeError("unshare -n refused")
        self.holder = holder

    @classmethod
    def loopback_or_host(cls) -> Namespace:
        """A loopback-only namespace where one can be made and is wanted; else the host's (not
        root, no unshare/nsenter/ip, unshare refused, or PARLEY_TEST_NETNS=0)."""
        if os.environ.get("PARLEY_TEST_NETNS", "1") == "0" or available() is not None:
            return cls(isolated=False)
        try:
            return cls()
        except RuntimeError:
            return cls(isolated=False)

    @property
    def isolated(self) -> bool:
        return self.holder is not None

    @property
    def pid(self) -> int:
        """The holder's PID (its /proc/PID/ns/net is the namespace); only when isolated."""
        assert self.holder is not None, "the host's namespace has no holder"
        return self.holder.pid

    @property
    def prefix(self) -> list[str]:
        """Prepend to a command to run it in this namespace (nsenter execs: same PID); empty for
        the host's."""
        return ["nsenter", "-t", str(self.pid), "-n"] if self.isolated else []

    def run(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread in the namespace (sockets made here stay in it)."""
        if not self.isolated:
            yield
            return
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
        if self.holder is None:
            return
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        assert self.holder.stdout is not None
        self.holder.stdout.close()

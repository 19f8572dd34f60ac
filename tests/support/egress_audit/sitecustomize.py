"""Socket audit for the zero-egress test (tests/browser/test_zero_egress.py), loaded by every Python
process started with this directory on PYTHONPATH and ``PARLEY_EGRESS_AUDIT=<file>`` set: the
server and the worker processes it starts (they inherit the environment).

An audit hook (PEP 578) appends one JSON line per distinct (event, host) to the file:
``socket.connect``, ``socket.sendto``, ``socket.sendmsg``, ``socket.bind`` with the address, and
``socket.getaddrinfo`` with the name looked up (a DNS query for a public name is egress too).
Distinct only: RTP would otherwise write a line per packet.
"""

from __future__ import annotations

import json
import os
import sys
import threading

_PATH = os.environ.get("PARLEY_EGRESS_AUDIT")
_EVENTS = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind", "socket.getaddrinfo"}


def _install(path: str) -> None:
    seen: set[tuple[str, str]] = set()
    lock = threading.Lock()
    pid = os.getpid()
    out = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives with the process

    def host_of(event: str, args: tuple[object, ...]) -> str:
        if event == "socket.getaddrinfo":
            return str(args[0])
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and address:
            return str(address[0])
        return repr(address)  # AF_UNIX path, or None (a connected socket's sendmsg)

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event not in _EVENTS:
            return
        try:
            key = (event, host_of(event, args))
        except Exception:  # noqa: BLE001 - never break the audited process
            return
        with lock:
            if key in seen:
                return
            seen.add(key)
            record = {"pid": pid, "argv": sys.argv[:2], "event": key[0], "host": key[1]}
            out.write(json.dumps(record) + "\n")

    sys.addaudithook(hook)


if _PATH:
    _install(_PATH)

"""A TCP-only bridge between two network namespaces, for tests where UDP has no path.

A page in namespace B loads ``http://127.0.0.1:PORT`` and opens its WebSocket there; the relay
listens on that address in B and connects each accepted socket to the same address in the
server's namespace A (the same port, so the server's Origin check sees its own origin). Nothing
carries UDP: the SFU's ICE candidates (127.0.0.1 in A) are unreachable from B, as they are from
a network that blocks UDP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from tests.support.netns import _setns


@contextlib.contextmanager
def in_namespace_of(pid: int | None) -> Iterator[None]:
    """Run the block with this thread in the network namespace of process ``pid`` (None: stay)."""
    if pid is None:
        yield
        return
    with (
        open("/proc/thread-self/ns/net", "rb") as home,
        open(f"/proc/{pid}/ns/net", "rb") as there,
    ):
        _setns(there.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())


class TcpRelay:
    """Relays ``127.0.0.1:port`` in the namespace of ``listen_pid`` to the same address in the
    namespace of ``target_pid`` (None: this process's own). Threads; ``close()`` stops it."""

    def __init__(self, port: int, *, listen_pid: int, target_pid: int | None) -> None:
        self.port = port
        self.target_pid = target_pid
        with in_namespace_of(listen_pid):
            self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with in_namespace_of(self.target_pid):
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                upstream.connect(("127.0.0.1", self.port))
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        self._thread.join(timeout=2)
        with self._lock:
            for s in self._sockets:
                s.close()

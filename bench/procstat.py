"""CPU accounting from /proc: per process, per thread, and for the whole machine.

``schedstat`` gives nanosecond run time *and* run-queue wait (time runnable but not running),
which on a small box says whether a process was starved; ``stat`` ticks (10 ms) are the fallback.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadCpu:
    name: str
    cpu_s: float
    wait_s: float


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    """One reading of a process tree: CPU used and run-queue wait, per thread and in total
    (``pid``'s own main thread is the event loop)."""

    pid: int
    t_s: float
    cpu_s: float
    threads: dict[int, ThreadCpu] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SystemCpu:
    """Aggregate jiffies of every CPU (``/proc/stat`` first line)."""

    t_s: float
    total: int
    idle: int
    steal: int
    #: UDP datagrams dropped because a socket's receive buffer was full (machine-wide)
    udp_rcvbuf_errors: int = 0


def udp_rcvbuf_errors() -> int:
    text = _read("/proc/net/snmp") or ""
    rows = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return 0
    return int(rows[1][rows[0].index("RcvbufErrors")])


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _stat_cpu_s(text: str) -> float:
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime + stime


def _thread(pid: int, tid: int) -> ThreadCpu | None:
    base = f"/proc/{pid}/task/{tid}"
    sched, stat = _read(f"{base}/schedstat"), _read(f"{base}/stat")
    if stat is None:
        return None
    name = (_read(f"{base}/comm") or "?").strip()
    if sched is not None:
        run_ns, wait_ns, _slices = (int(x) for x in sched.split())
        if run_ns > 0:
            return ThreadCpu(name, run_ns / 1e9, wait_ns / 1e9)
    return ThreadCpu(name, _stat_cpu_s(stat), 0.0)


def _tids(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (e.g. media worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for tid in _tids(current):
            children = _read(f"/proc/{current}/task/{tid}/children") or ""
            todo.extend(int(c) for c in children.split())
    return found


def process_cpu(pid: int) -> ProcessCpu | None:
    """Read ``pid`` and its descendants now; ``None`` if ``pid`` is gone."""
    t_s = time.monotonic()
    if _read(f"/proc/{pid}/stat") is None:
        return None
    threads: dict[int, ThreadCpu] = {}
    cpu_s = 0.0
    for proc in descendants(pid):
        stat = _read(f"/proc/{proc}/stat")
        if stat is None:
            continue
        # The process total comes from stat (10 ms ticks) because it also counts threads that
        # already exited; per-thread figures come from schedstat (ns) where the kernel has it.
        cpu_s += _stat_cpu_s(stat)
        for tid in _tids(proc):
            thread = _thread(proc, tid)
            if thread is not None:
                threads[tid] = thread
    return ProcessCpu(pid, t_s, cpu_s, threads)


def system_cpu() -> SystemCpu:
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    steal = values[7] if len(values) > 7 else 0
    # guest time is already counted in user; leave guest fields out of the total
    return SystemCpu(
        time.monotonic(), sum(values[:8]), values[3] + values[4], steal, udp_rcvbuf_errors()
    )


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """What a process used between two readings, in percent of one core."""

    cpu_pct: float
    main_thread_pct: float
    other_threads_pct: float
    runqueue_wait_pct: float
    threads: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cpu_pct": round(self.cpu_pct, 2),
            "main_thread_pct": round(self.main_thread_pct, 2),
            "other_threads_pct": round(self.other_threads_pct, 2),
            "runqueue_wait_pct": round(self.runqueue_wait_pct, 2),
            "threads": self.threads,
        }


def usage(a: ProcessCpu, b: ProcessCpu) -> CpuUsage:
    """CPU between readings ``a`` and ``b`` of one process (main thread = the event loop)."""
    dt = b.t_s - a.t_s
    main_a, main_b = a.threads.get(a.pid), b.threads.get(b.pid)
    main = (main_b.cpu_s - main_a.cpu_s) if main_a and main_b else 0.0
    total = max(b.cpu_s - a.cpu_s, main)
    wait = sum(
        t.wait_s - (a.threads[tid].wait_s if tid in a.threads else 0.0)
        for tid, t in b.threads.items()
    )
    return CpuUsage(
        cpu_pct=100 * total / dt,
        main_thread_pct=100 * main / dt,
        other_threads_pct=100 * (total - main) / dt,
        runqueue_wait_pct=100 * wait / dt,
        threads=len(b.threads),
    )


def system_usage(a: SystemCpu, b: SystemCpu) -> dict[str, float]:
    """Machine-wide busy and steal time between two readings, in percent of all cores, and the
    UDP datagrams dropped meanwhile for full receive buffers."""
    total = max(1, b.total - a.total)
    return {
        "busy_pct_of_all_cores": round(100 * (total - (b.idle - a.idle)) / total, 1),
        "steal_pct_of_all_cores": round(100 * (b.steal - a.steal) / total, 1),
        "cores": os.cpu_count() or 1,
        "udp_rcvbuf_errors": b.udp_rcvbuf_errors - a.udp_rcvbuf_errors,
    }

"""Does the audience scale? (issue 16, acceptance point 4)

``parley serve`` (its own process, captions on: the real speech worker translates) hosts one
room. On loopback:

* ``--viewers`` simulated viewers each read their language's document
  (``/live/<room>/questions.<lang>.json``, languages round robin) every ``--poll-s`` seconds,
  revalidating with ``If-None-Match`` as a browser or a CDN does, through at most
  ``--concurrency`` connections at once (bounded: a request that cannot start on time is late,
  and its lateness is reported);
* ``--submit-rate`` questions a second for ``--seconds``, in English, Spanish and French, each
  text unique, from ``--submitters`` audience sockets, each on its own 127.0.x.y address (a real
  audience comes from many addresses; the per-address limit stays as configured);
* a moderator socket approves every ``--approve-every``-th accepted question.

Then a readers-only window (``--quiet-s``): the documents are read on, nothing is submitted.

Checks and figures: every submission answered once; the moderator's export holds every
accepted question once (none lost, none duplicated); submission latency (``ask`` to
``accepted``) p50/p99/max; document requests served (200 / 304), their latency and lateness;
the server's CPU (its process tree, and its event-loop thread) over the submission window;
translations asked (``parley_audience_translations``, per target language) against approved
questions × languages, and during the readers-only window (must be 0: readers cost no
translation).

    PYTHONPATH=. .venv/bin/python bench/audience.py --viewers 10000 --submit-rate 100 \\
        --seconds 60 --json bench/results/audience.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import secrets
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.procstat import process_cpu, usage
from server.metrics import parse_text
from tests.support.origin import ws_origin
from tests.support.raw import RawClient
from tests.support.server import ServerProcess

ROOM = "bench"
LANGUAGES = ("en", "es", "fr", "pt")
#: each text unique and unlike the others (made-up words pass through the engines unchanged), so
#: that no two are grouped and every approval approves one question
ASK_TEXTS = {
    "en": "Why {words}?",
    "es": "¿Por qué {words}?",
    "fr": "Pourquoi {words} ?",
}


def config(per_viewer_per_min: int) -> str:
    return (
        '[media]\nice_host_addresses = ["127.0.0.1"]\n'
        "[captions]\nenabled = true\n"
        '[logging]\nlevel = "warning"\n'
        f"[audience]\nlanguages = {json.dumps(list(LANGUAGES))}\nmax_pending = 100000\n"
        f"per_viewer_per_min = {per_viewer_per_min}\ntranslate_queue_max = 100000\n"
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as reply:
        return parse_text(reply.read().decode()).get(name, 0.0)


class Socket:
    """An audience socket whose answers are matched in order; a reader task drains it (the
    moderator's pushed queues are dropped here)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, port: int, source: str, lang: str, **hello: Any) -> Socket:
        url = f"ws://127.0.0.1:{port}/live/{ROOM}/audience"
        ws = await connect(url, origin=ws_origin(url), local_addr=(source, 0), max_size=None)
        hello = {"type": "hello", "viewer_id": secrets.token_hex(8), "lang": lang, **hello}
        await ws.send(json.dumps(hello))
        json.loads(await ws.recv())
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] != "queue":
                    self.answers.put_nowait(message)

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            await self.ws.send(json.dumps(message))
            return await self.answers.get()

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


async def http_get(port: int, path: str, etag: str | None) -> tuple[int, str | None]:
    """One GET on a fresh connection (the server closes after each response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        extra = f"If-None-Match: {etag}\r\n" if etag else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("Content-Length", "0"))
        if length:
            await reader.readexactly(length)
        return status, headers.get("ETag", etag)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class Readers:
    """``viewers`` pollers scheduled on a heap, run by ``concurrency`` workers."""

    def __init__(self, port: int, viewers: int, poll_s: float, concurrency: int) -> None:
        self.port, self.poll_s, self.concurrency = port, poll_s, concurrency
        now = time.monotonic()
        self.heap = [(now + poll_s * i / viewers, i) for i in range(viewers)]
        heapq.heapify(self.heap)
        self.etags: dict[int, str | None] = {}
        self.latency_s: list[float] = []
        self.late_s: list[float] = []
        self.status: dict[int, int] = {}
        self.errors = 0
        self.stop = False

    async def worker(self) -> None:
        while not self.stop:
            due, viewer = heapq.heappop(self.heap)
            heapq.heappush(self.heap, (due + self.poll_s, viewer))
            wait_s = due - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            lang = LANGUAGES[viewer % len(LANGUAGES)]
            started = time.monotonic()
            self.late_s.append(max(0.0, started - due))
            try:
                status, etag = await http_get(
                    self.port, f"/live/{ROOM}/questions.{lang}.json", self.etags.get(viewer)
                )
            except OSError:
                self.errors += 1
                continue
            self.latency_s.append(time.monotonic() - started)
            self.status[status] = self.status.get(status, 0) + 1
            self.etags[viewer] = etag

    def summary(self, seconds: float) -> dict[str, Any]:
        served = sum(self.status.values())
        return {
            "requests": served,
            "requests_per_s": round(served / seconds, 1),
            "demanded_per_s": round(len(self.heap) / self.poll_s, 1),
            "status": self.status,
            "errors": self.errors,
            "latency_ms": {
                "p50": round(1000 * pct(self.latency_s, 0.5), 2),
                "p99": round(1000 * pct(self.latency_s, 0.99), 2),
            },
            "late_ms_p50": round(1000 * pct(self.late_s, 0.5), 1),
            "late_ms_p99": round(1000 * pct(self.late_s, 0.99), 1),
        }


async def run(args: argparse.Namespace, server: ServerProcess) -> dict[str, Any]:
    port = server.port
    host = await RawClient.connect(server.ws_url)
    await host.send({"type": "join", "room": ROOM, "name": "Host", "lang": "en"})
    key = (await host.recv("joined"))["moderate_url"].split("#key=", 1)[1]
    moderator = await Socket.open(port, "127.0.0.1", "en", moderator_key=key)
    sources = [f"127.0.{2 + i // 250}.{1 + i % 250}" for i in range(args.submitters)]
    submitters = [await Socket.open(port, s, "en") for s in sources]
    readers = Readers(port, args.viewers, args.poll_s, args.concurrency)
    reader_tasks = [asyncio.create_task(readers.worker()) for _ in range(args.concurrency)]
    await asyncio.sleep(args.poll_s)  # the readers' schedule is running
    sent: dict[str, str] = {}
    accepted: dict[str, str] = {}
    refused: dict[str, int] = {}
    latency_s: list[float] = []
    to_approve: asyncio.Queue[str | None] = asyncio.Queue()

    async def approve() -> None:
        while (item_id := await to_approve.get()) is not None:
            await moderator.call({"type": "moderate", "id": item_id, "action": "approve"})

    async def ask(n: int) -> None:
        lang = ("en", "es", "fr")[n % 3]
        words = " ".join(f"zq{secrets.token_hex(3)}" for _ in range(3))
        text = ASK_TEXTS[lang].format(words=words)
        sent[text] = lang
        started = time.monotonic()
        answer = await submitters[n % len(submitters)].call(
            {"type": "ask", "text": text, "lang": lang}
        )
        latency_s.append(time.monotonic() - started)
        if answer["type"] == "accepted":
            accepted[answer["id"]] = text
            if len(accepted) % args.approve_every == 0:
                to_approve.put_nowait(answer["id"])
        else:
            refused[answer["code"]] = refused.get(answer["code"], 0) + 1

    approver = asyncio.create_task(approve())
    translations_0 = metric(server, "parley_audience_translations_total")
    cpu_0 = process_cpu(server.pid)
    started = time.monotonic()
    asks: list[asyncio.Task[None]] = []
    total = int(args.submit_rate * args.seconds)
    for n in range(total):
        due = started + n / args.submit_rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        asks.append(asyncio.create_task(ask(n)))
    await asyncio.gather(*asks)
    window_s = time.monotonic() - started
    cpu_1 = process_cpu(server.pid)
    to_approve.put_nowait(None)
    await approver
    # translations catch up (the job queue empties), then a readers-only window
    drain_started = time.monotonic()
    while time.monotonic() < drain_started + args.drain_s:
        if metric(server, "parley_audience_translation_jobs") == 0:
            break
        await asyncio.sleep(1)
    drain_s = time.monotonic() - drain_started
    translations_1 = metric(server, "parley_audience_translations_total")
    read_before = sum(readers.status.values())
    await asyncio.sleep(args.quiet_s)
    translations_2 = metric(server, "parley_audience_translations_total")
    read_quiet = sum(readers.status.values()) - read_before
    readers.stop = True
    for task in reader_tasks:
        task.cancel()
    await asyncio.gather(*reader_tasks, return_exceptions=True)
    exported = json.loads((await moderator.call({"type": "export"}))["json"])
    items = exported["items"]
    ids = [i["id"] for i in items]
    texts = [i["text"] for i in items]
    approved = sum(1 for i in items if i["status"] == "approved")
    non_english = sum(1 for t in accepted.values() if sent[t] != "en")
    approved_non_english = sum(1 for i in items if i["status"] == "approved" and i["lang"] != "en")
    for sock in [moderator, *submitters]:
        await sock.close()
    await host.close()
    usage_ = usage(cpu_0, cpu_1) if cpu_0 and cpu_1 else None
    languages = len(LANGUAGES)
    return {
        "load": {
            "viewers": args.viewers,
            "poll_s": args.poll_s,
            "concurrency": args.concurrency,
            "submit_rate_per_s": args.submit_rate,
            "seconds": args.seconds,
            "submitters": args.submitters,
            "approve_every": args.approve_every,
            "languages": list(LANGUAGES),
        },
        "submissions": {
            "sent": total,
            "answered": len(latency_s),
            "accepted": len(accepted),
            "refused": refused,
            "achieved_per_s": round(total / window_s, 1),
            "latency_ms": {
                "p50": round(1000 * pct(latency_s, 0.5), 2),
                "p99": round(1000 * pct(latency_s, 0.99), 2),
                "max": round(1000 * max(latency_s, default=float("nan")), 2),
            },
        },
        "integrity": {
            "exported_items": len(items),
            "duplicate_ids": len(ids) - len(set(ids)),
            "duplicate_texts": len(texts) - len(set(texts)),
            "lost": len(set(accepted.values()) - set(texts)),
            "unknown": len(set(texts) - set(sent)),
            "ok": len(items) == len(accepted)
            and len(set(texts)) == len(texts)
            and set(texts) == set(accepted.values()),
        },
        "reads": readers.summary(time.monotonic() - started),
        "reads_in_quiet_window": read_quiet,
        "server_cpu": None if usage_ is None else usage_.as_dict(),
        "translations": {
            "during_and_after_submissions": translations_1 - translations_0,
            "during_readers_only_window": translations_2 - translations_1,
            "caught_up_s_after_submissions": round(drain_s, 1),
            "per_s_over_run": round((translations_1 - translations_0) / (window_s + drain_s), 1),
            "approved": approved,
            "submitted_not_english": non_english,
            "expected": "one per (question, language) it is read in: the pivot (en) for every"
            " non-English question (the moderator reads en too), and every other event language"
            " for each approved one",
            "expected_value": non_english + approved * (languages - 1) - approved_non_english,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    s, r, t, i = result["submissions"], result["reads"], result["translations"], result["integrity"]
    cpu = result["server_cpu"] or {}
    load = result["load"]
    return "\n".join(
        [
            f"Load: {load['viewers']} viewers reading every {load['poll_s']} s through "
            f"{load['concurrency']} connections; {load['submit_rate_per_s']} questions/s for "
            f"{load['seconds']} s from {load['submitters']} sockets; every "
            f"{load['approve_every']}th approved; languages {', '.join(load['languages'])}.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| questions sent / accepted / refused | {s['sent']} / {s['accepted']} / "
            f"{s['refused']} |",
            f"| lost / duplicated (export vs accepted) | {i['lost']} / {i['duplicate_texts']} |",
            f"| submission latency p50 / p99 / max | {s['latency_ms']['p50']} / "
            f"{s['latency_ms']['p99']} / {s['latency_ms']['max']} ms |",
            f"| document reads served (demanded) | {r['requests_per_s']}/s "
            f"({r['demanded_per_s']}/s); {r['status']} |",
            f"| document read latency p50 / p99 | {r['latency_ms']['p50']} / "
            f"{r['latency_ms']['p99']} ms |",
            f"| server CPU (tree / event loop) | {cpu.get('cpu_pct')} % / "
            f"{cpu.get('main_thread_pct')} % of a core (run-queue wait "
            f"{cpu.get('runqueue_wait_pct')} %) |",
            f"| translations (approved {t['approved']}) | {t['during_and_after_submissions']:.0f} "
            f"(expected {t['expected_value']}) |",
            f"| translations caught up after the submissions | "
            f"{t['caught_up_s_after_submissions']} s ({t['per_s_over_run']}/s over the run) |",
            f"| translations while only reading | {t['during_readers_only_window']:.0f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--submit-rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--submitters", type=int, default=250)
    parser.add_argument("--approve-every", type=int, default=10)
    parser.add_argument("--per-viewer-per-min", type=int, default=60)
    parser.add_argument("--drain-s", type=float, default=120.0)
    parser.add_argument("--quiet-s", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp), config(args.per_viewer_per_min))
        with server:
            result = asyncio.run(run(args, server))
    print(json.dumps(result, indent=1))
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        args.json.with_suffix(".md").write_text(markdown(result) + "\n")


if __name__ == "__main__":
    main()

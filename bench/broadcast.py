"""How late, how exact and how far does a broadcast go? (issue 15, acceptance 2)

    PYTHONPATH=. .venv/bin/python bench/broadcast.py --json bench/results/broadcast.json
    PYTHONPATH=. .venv/bin/python bench/broadcast.py --short --json bench/results/broadcast.json

1. **Live run** (2 renditions, captions on, recording kept): ``parley serve`` in its own
   process, an aiortc speaker in this one (the English long-form clip, looped, and a camera
   that shows the monotonic time in its pixels: bench/broadcast_live.py) starts the broadcast;
   a watcher polls the origin (Parley's /live/) every 0.1 s and keeps every segment. Figures:
   glass-to-origin (capture -> its segment listed) and glass-to-glass for a player that plays
   like the watch page's hls.js (``liveSyncDuration`` 2.5 s behind the newest listed
   segment's end), median and p95 over every frame; caption cue start vs the
   speech it captions (the program's floor audio aligned with the clip by envelope
   correlation; the evalset's VAD speech_start/speech_end per utterance); the CPU of the
   broadcast worker and its ffmpeg.
2. **One rendition, then two** (captions off, nothing watching): the worker's CPU only.
3. **Origin capacity**: Debian's nginx with config/nginx-broadcast.conf (worker_processes 1)
   serving a live replay of run 1's recording; simulated viewers (bench/hls_viewers.py) in
   steps; per step nginx's CPU, requests/s, bytes/s, stalls. Viewers per origin core =
   viewers / nginx's share of a core at the largest step without a stall.

Writes OUT (JSON), OUT with .md (the markdown section of docs/benchmarks.md) and OUT with .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import procstat  # noqa: E402
from bench.broadcast_live import (  # noqa: E402
    ClockVideo,
    Fetched,
    Watcher,
    align,
    caption_offsets,
    chromium_cues,
    chromium_glass,
    cue_listed,
    file_envelope,
    player_position,
    program_audio,
    shown_cues,
    summary,
    video_latency,
    vtt_cues,
)
from bench.broadcast_report import markdown, plot  # noqa: E402
from bench.hls_viewers import LiveReplay, ViewerStats, viewer  # noqa: E402
from broadcast.worker import CAPTION_WAIT_S  # noqa: E402
from tests.support.broadcast_watch import start_nginx  # noqa: E402
from tests.support.client import FileAudio, ParleyClient  # noqa: E402
from tests.support.server import ServerProcess, free_port  # noqa: E402

LONGFORM = Path("/work/shared/evalset/longform")
ROOM = "bench"
SEGMENT_S = 1.0
HOLD_BACK_S = 2.5  # web/watch.js: liveSyncDuration


def config(tmp: Path, renditions: str, *, captions: bool) -> str:
    sizes = []
    for part in renditions.split(","):
        size, kbps = part.split(":")
        width, height = size.split("x")
        sizes.append(f"{{ width = {width}, height = {height}, video_kbps = {kbps} }}")
    return (
        f'[server]\ndata_dir = "{tmp / "data"}"\n'
        '[media]\nice_host_addresses = ["127.0.0.1"]\n'
        f"[captions]\nenabled = {'true' if captions else 'false'}\n"
        '[retention]\nmode = "jsonl"\nkinds = ["broadcasts"]\n'
        f'[broadcast]\ndir = "{tmp / "live"}"\npublic = true\n'
        f"renditions = [{', '.join(sizes)}]\nfps = 25\nsegment_s = {SEGMENT_S}\n"
    )


def worker_pid(server_pid: int) -> int | None:
    for pid in procstat.descendants(server_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in cmdline and b"broadcast" in cmdline:
            return pid
    return None


async def live_run(
    tmp: Path, renditions: str, seconds: float, *, captions: bool, watch: bool, chromium: bool
) -> dict[str, Any]:
    clip = LONGFORM / "en_fleurs_concat.flac"
    server = ServerProcess(tmp, config(tmp, renditions, captions=captions))
    server.start(timeout_s=180)
    result: dict[str, Any] = {"renditions": renditions, "seconds": seconds, "captions": captions}
    try:
        speaker = ParleyClient(
            server.ws_url, room=ROOM, name="Sam", lang="en",
            video=ClockVideo(640, 360), audio=FileAudio(str(clip), loop=True),
        )  # fmt: skip
        await speaker.join()
        await speaker.send({"type": "broadcast_start"})
        names = [f"v{i}" for i in range(len(renditions.split(",")))]
        tracks = (names[-1], "a_floor", "s_orig")
        watcher = Watcher("127.0.0.1", server.port, f"/live/{ROOM}", tracks)
        stop = asyncio.Event()
        master = tmp / "live" / ROOM / "master.m3u8"
        deadline = time.monotonic() + 60
        while not (tmp / "live" / ROOM / names[0] / "index.m3u8").exists():
            assert time.monotonic() < deadline, server.log_tail()
            await asyncio.sleep(0.2)
        assert master.exists()
        pid = worker_pid(server.proc.pid if server.proc else 0)
        watching = asyncio.create_task(watcher.run(stop)) if watch else None
        browser = None
        if watch and chromium:
            (tmp / "chromium").mkdir()
            url = f"{server.http_url}/watch.html?room={ROOM}"
            browser = asyncio.create_task(
                asyncio.to_thread(chromium_glass, url, seconds, tmp / "chromium")
            )
        await asyncio.sleep(5)  # warm-up
        before = procstat.process_cpu(pid) if pid else None
        system_before = procstat.system_cpu()
        await asyncio.sleep(seconds)
        after = procstat.process_cpu(pid) if pid else None
        system_after = procstat.system_cpu()
        if before and after:
            result["worker_cpu"] = procstat.usage(before, after).as_dict()
        result["machine"] = procstat.system_usage(system_before, system_after)
        if browser is not None:
            result["chromium"] = await browser
        stop.set()
        if watching is not None:
            await watching
        await speaker.send({"type": "broadcast_stop"})
        await asyncio.sleep(3)
        await speaker.close()
    finally:
        server.stop(timeout_s=60)
    recordings = sorted((tmp / "data" / "recordings" / ROOM).glob("*/hls"))
    if recordings:
        result["recording"] = str(recordings[-1])
    if watch:
        chromium = result.get("chromium", {})
        result.update(
            analyse(
                watcher,
                clip,
                recordings[-1] if recordings else None,
                chromium.get("cue_late_s"),
                chromium.get("watching_from"),
            )
        )
    return result


def analyse(
    watcher: Watcher,
    clip: Path,
    recording: Path | None,
    late: dict[str, float] | None,
    watching_from: float | None,
) -> dict[str, Any]:
    video, audio, subs = (watcher.got.get(t, []) for t in watcher.tracks)
    vod_subs = [
        Fetched(0, p.name, 0.0, 0.0, p.read_bytes())
        for p in sorted((recording / "s_orig").glob("*.vtt") if recording else [])
    ]
    latency = video_latency(video, HOLD_BACK_S)
    first_pts, envelope = program_audio(audio)
    reference = file_envelope(clip)
    zero_s, correlation = align(envelope, reference)
    meta = json.loads(clip.with_suffix(".json").read_text())
    window = (first_pts, first_pts + len(envelope) / 100)
    figures: dict[str, Any] = {"latency": latency}
    positions = player_position(video, HOLD_BACK_S)
    runs = [("captions", subs), ("shown_captions", subs), ("vod_captions", vod_subs)]
    if late is not None:
        runs.append(("chromium_captions", subs))
    # Chromium counts only the utterances said after it began to look (where a player was then)
    seen_from = max((p for t, p in positions if t <= (watching_from or 0.0)), default=None)
    for name, segments in runs:
        cues = vtt_cues(segments)
        if name == "shown_captions":
            cues = shown_cues(cues, cue_listed(segments), positions)
        elif name == "chromium_captions":
            written = len(cues)
            cues = chromium_cues(cues, late or {})
            print(f"[broadcast] Chromium showed {len(cues)} of {written} cues", flush=True)
        span = window
        if name == "chromium_captions" and seen_from is not None:
            span = (max(window[0], seen_from), window[1])
        rows = caption_offsets(
            cues, first_pts + zero_s, len(reference) / 100, meta["segments"], *span
        )
        starts = [r["start_offset_s"] for r in rows]
        figures[name] = {
            "alignment_correlation": round(correlation, 3),
            "cues": len(cues),
            "utterances": rows,
            "start_offset_s": summary(starts),
            "abs_start_offset_s": summary([abs(s) for s in starts]),
            "end_offset_s": summary([r["end_offset_s"] for r in rows]),
        }
    return figures


def restart_nginx(folder: Path) -> subprocess.Popen[bytes]:
    """The shipped config as start_nginx wrote it, with one worker process (viewers per core)
    and no access log (it would measure the disk)."""
    conf = (folder / "nginx.conf").read_text()
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    conf = conf.replace("access_log ", "access_log off; # ")
    (folder / "nginx.conf").write_text(conf)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen(
        [nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_origin(
    tmp: Path, recording: Path
) -> tuple[LiveReplay, subprocess.Popen[bytes], int, tuple[str, str, str]]:
    tracks = ("v1" if (recording / "v1").exists() else "v0", "a_floor", "s_orig")
    replay = LiveReplay(recording, tmp / "origin" / ROOM, tracks, window=10)
    replay.start()
    port = free_port()
    folder = tmp / "nginx"
    folder.mkdir()
    first = start_nginx([], folder, port=port, parley_port=free_port(), live_dir=tmp / "origin")
    first.terminate()  # it wrote the config: now with one worker process
    first.wait()
    return replay, restart_nginx(folder), port, tracks


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


async def origin_run(tmp: Path, recording: Path, steps: list[int], step_s: float) -> dict[str, Any]:
    replay, nginx, port, tracks = start_origin(tmp, recording)
    await asyncio.sleep(1.0)
    stop_replay = asyncio.Event()
    replaying = asyncio.create_task(replay.run(stop_replay, SEGMENT_S))
    results = []
    try:
        for count in steps:
            stop = asyncio.Event()
            stats = [ViewerStats() for _ in range(count)]
            tasks = []
            for i, s in enumerate(stats):
                tasks.append(asyncio.create_task(
                    viewer("127.0.0.1", port, f"/live/{ROOM}", tracks, s, stop, SEGMENT_S)
                ))  # fmt: skip
                if i % 20 == 19:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(5)  # everyone started
            marks = [(sum(s.requests for s in stats), sum(s.bytes for s in stats))]
            n0, me0, sys0 = (
                procstat.process_cpu(nginx.pid),
                procstat.process_cpu(_me()),
                procstat.system_cpu(),
            )
            stalls0 = sum(s.stalls for s in stats)
            await asyncio.sleep(step_s)
            n1, me1, sys1 = (
                procstat.process_cpu(nginx.pid),
                procstat.process_cpu(_me()),
                procstat.system_cpu(),
            )
            marks.append((sum(s.requests for s in stats), sum(s.bytes for s in stats)))
            stalls = sum(s.stalls for s in stats) - stalls0
            stop.set()
            await asyncio.gather(*tasks)
            assert n0 and n1 and me0 and me1
            fetch = [t for s in stats for t in s.segment_fetch_s]
            row = {
                "viewers": count,
                "started": sum(s.started for s in stats),
                "stalls": stalls,
                "errors": sum(s.errors for s in stats),
                "requests_per_s": round((marks[1][0] - marks[0][0]) / step_s, 1),
                "mbit_per_s": round((marks[1][1] - marks[0][1]) * 8 / step_s / 1e6, 1),
                "nginx_cpu_pct": round(procstat.usage(n0, n1).cpu_pct, 1),
                # the bench process tree holds nginx too
                "clients_cpu_pct": round(
                    procstat.usage(me0, me1).cpu_pct - procstat.usage(n0, n1).cpu_pct, 1
                ),
                "machine": procstat.system_usage(sys0, sys1),
                "segment_fetch_s": summary(fetch),
            }
            print(f"[broadcast] origin {row}", flush=True)
            results.append(row)
            if stalls or row["started"] < count:
                break
    finally:
        stop_replay.set()
        await replaying
        nginx.terminate()
        nginx.wait()
    return {"tracks": list(tracks), "steps": results}


def _me() -> int:
    import os

    return os.getpid()


async def cpu_only(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    measured = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    measured["load_before"] = loadavg()
    with tempfile.TemporaryDirectory(prefix="parley-bench-broadcast-") as name:
        tmp = Path(name)
        for key, renditions in (
            ("one_rendition", args.renditions.split(",")[0]),
            ("two_renditions_cpu", args.renditions),
        ):
            (tmp / key).mkdir()
            out[key] = await live_run(
                tmp / key, renditions, args.cpu_seconds, captions=False, watch=False,
                chromium=False,
            )  # fmt: skip
            print(f"[broadcast] {key} {out[key].get('worker_cpu')}", flush=True)
    measured["load_after"] = loadavg()
    out["cpu_measured"] = measured
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "segment_s": SEGMENT_S,
        "caption_wait_s": CAPTION_WAIT_S,
        "hold_back_s": HOLD_BACK_S,
        "mode": "short" if args.short else "long",
        "load_before": loadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="parley-bench-broadcast-") as name:
        tmp = Path(name)
        (tmp / "two").mkdir()
        out["two_renditions"] = await live_run(
            tmp / "two", args.renditions, args.seconds, captions=True, watch=True,
            chromium=args.chromium,
        )  # fmt: skip
        print(f"[broadcast] live {json.dumps(out['two_renditions'])[:1500]}", flush=True)
        if args.live_only:
            out["load_after"] = loadavg()
            return out
        (tmp / "one").mkdir()
        out["one_rendition"] = await live_run(
            tmp / "one", args.renditions.split(",")[0], args.cpu_seconds, captions=False,
            watch=False, chromium=False,
        )  # fmt: skip
        print(f"[broadcast] one rendition {out['one_rendition'].get('worker_cpu')}", flush=True)
        (tmp / "two_cpu").mkdir()
        out["two_renditions_cpu"] = await live_run(
            tmp / "two_cpu", args.renditions, args.cpu_seconds, captions=False,
            watch=False, chromium=False,
        )  # fmt: skip
        print(
            f"[broadcast] two renditions {out['two_renditions_cpu'].get('worker_cpu')}", flush=True
        )
        recording = out["two_renditions"].get("recording")
        if recording and args.viewers:
            steps = [int(v) for v in args.viewers.split(",")]
            out["origin"] = await origin_run(tmp, Path(recording), steps, args.step_s)
    out["load_after"] = loadavg()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "broadcast.json")
    ap.add_argument("--short", action="store_true", help="60 s live, 20 s CPU, 10 s steps")
    ap.add_argument("--renditions", default="1280x720:2500,640x360:800")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--cpu-seconds", type=float, default=None)
    ap.add_argument("--viewers", default=None, help="viewer counts, e.g. 50,100,200,400")
    ap.add_argument("--step-s", type=float, default=None)
    ap.add_argument(
        "--no-chromium", dest="chromium", action="store_false",
        help="no watch page in Chromium (glass-to-glass then only computed)",
    )  # fmt: skip
    ap.add_argument(
        "--cpu-only", action="store_true",
        help="only the worker's CPU (1 and 2 renditions), into the existing --json's figures",
    )  # fmt: skip
    ap.add_argument(
        "--live-only", action="store_true",
        help="the live run only (latency and captions; no CPU runs, no origin)",
    )  # fmt: skip
    args = ap.parse_args()
    args.seconds = args.seconds or (60 if args.short else 120)
    args.cpu_seconds = args.cpu_seconds or (20 if args.short else 60)
    args.viewers = args.viewers or ("100,300,1000,2000" if args.short else "100,300,1000,2000,3000")
    args.step_s = args.step_s or (10 if args.short else 20)
    if args.cpu_only:
        # the worker's CPU again (e.g. on a quieter machine), into the figures of an earlier run
        result = json.loads(args.json.read_text())
        result.update(asyncio.run(cpu_only(args)))
    else:
        result = asyncio.run(main_async(args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    args.json.with_suffix(".md").write_text(markdown(result))
    plot(result, args.json.with_suffix(".png"))
    print(f"[broadcast] wrote {args.json}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How many simultaneous speakers does this machine transcribe in real time?

K speakers (the evalset's long-form streams, one language each, fed at 1× on the wall clock)
go through one live caption pipeline, exactly ``bench/interpret.py``'s (Whisper, VAD, agreement,
translation); K grows 1, 2, 3, … until the p95 latency of final captions after each utterance's
speech end exceeds the goal. The capacity is the largest K that met it.

    PYTHONPATH=. .venv/bin/python bench/capacity.py --model base --device cpu \\
        --p95-goal-s 3.0 --json bench/results/capacity-cpu.json

With ``--workers N`` the speakers go through a :class:`interpret.pool.SpeechPool` of N worker
processes instead (the server's path: placement by load, each worker decoding in parallel, audio
and captions over the worker pipes); on 2 cores:

    PYTHONPATH=. .venv/bin/python bench/capacity.py --workers 2 --threads 1 \\
        --p95-goal-s 3.0 --json bench/results/capacity-cpu-pool.json

``bench/gpu_capacity.py`` runs the same search on a GPU (Whisper small, float16, p95 ≤ 2.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.interpret import (  # noqa: E402
    EVALSET,
    TARGETS,
    feed_realtime,
    invented_runs,
    normalize,
    utterance_latencies,
)

LANGS = ["en", "es", "de", "fr", "pt"]


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)


def run_speakers(
    factory: Any, langs: list[str], out_dir: Path, stream_s: float | None
) -> tuple[dict[str, Path], Any]:
    """Like ``bench/interpret.py``'s ``run_streams``, with any number of speakers per language
    (speaker ``i`` reads the stream of ``langs[i]``, ids ``LANG-i``), optionally cut to the first
    ``stream_s`` seconds."""
    from server.file_captions import CaptionLog, load_audio

    speakers = {f"{lang}-{i}": lang for i, lang in enumerate(langs)}
    files = {sid: out_dir / f"{sid}-k{len(langs)}.jsonl" for sid in speakers}
    sinks = {sid: CaptionLog(out=files[sid].open("w")) for sid in speakers}

    def emit(frame: Any) -> None:
        sinks[frame.speaker_id].emit(frame)

    pipeline = factory(emit, {TARGETS[lang] for lang in langs})
    audio = {}
    for sid, lang in speakers.items():
        samples = load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac")
        audio[sid] = samples if stream_s is None else samples[: int(stream_s * 16000)]
        pipeline.add_speaker(sid, lang)
    feed_realtime(pipeline, audio, sinks)
    return files, pipeline


class PoolPipeline:
    """What ``feed_realtime`` drives (add_speaker, set_targets, start, push, stop), over a
    :class:`~interpret.pool.SpeechPool` whose event loop runs on a thread of its own; captions
    are handed to ``emit`` from that thread as they arrive from the worker processes."""

    def __init__(self, config: Any, workers: int, emit: Any) -> None:
        from interpret.pool import PoolSettings, SpeechPool

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pool-loop")
        self._thread.start()
        self._pool = SpeechPool(config, settings=PoolSettings(workers=workers), nice=0)
        self._emit = emit
        self._run(self._pool.start())
        self._forward = asyncio.run_coroutine_threadsafe(self._forward_captions(), self._loop)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _forward_captions(self) -> None:
        async for frame in self._pool.captions():
            self._emit(frame)

    def set_targets(self, targets: Any) -> None:
        self._loop.call_soon_threadsafe(self._pool.set_targets, sorted(targets))

    def add_speaker(self, speaker_id: str, lang: str | None) -> None:
        self._loop.call_soon_threadsafe(self._pool.add_speaker, speaker_id, lang)

    def start(self) -> None:
        pass  # started in __init__ (the models load there, not on the benchmark's clock)

    def push(self, chunk: Any) -> None:
        self._loop.call_soon_threadsafe(self._pool.push, chunk)

    def stop(self, *, drain: bool = True, timeout_s: float = 30.0) -> None:
        """Every worker finishes its finals (the pool's close, bounded by the workers'
        ``close_timeout_s``), then the loop ends."""
        self._run(self._pool.aclose())
        self._forward.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def placement(self) -> dict[str, int]:
        return {w.worker_id: w.speakers for w in self._pool.workers()}


def live_wer(events: Path, meta: dict[str, Any]) -> float:
    """WER (%) of the finals, in start order, against the references of the segments fed
    (finals that start after the last of them, in a stream cut mid-utterance, left out)."""
    import jiwer

    last_end = max((seg["end"] for seg in meta["segments"]), default=0.0)
    finals = [
        e
        for e in (json.loads(line) for line in events.read_text().splitlines() if line.strip())
        if e.get("event") == "final" and float(e.get("start_s", 0)) < last_end
    ]
    finals.sort(key=lambda e: (float(e.get("start_s", 0)), float(e.get("emitted_s", 0))))
    ref = normalize(" ".join(seg["reference"] for seg in meta["segments"]))
    hyp = normalize(" ".join(e.get("text", "") for e in finals)) or "<empty>"
    return round(100 * jiwer.wer(ref, hyp), 2)


def children_cpu_s() -> float:
    """CPU seconds of worker processes that have exited (the pool's, once closed)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def search(args: argparse.Namespace) -> dict[str, Any]:
    from interpret.compose import PipelineConfig, build_pipeline, load_models
    from interpret.pipeline import CaptionPipeline
    from interpret.transcribe import RecognizerSettings

    recognizer = RecognizerSettings(
        model=args.model,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        encoder_window=args.encoder_window,
    )
    if args.final_beam is not None:
        recognizer = dataclasses.replace(recognizer, final_beam_size=args.final_beam)
    config = PipelineConfig(recognizer=recognizer, batch_size=args.batch)
    t_load = time.monotonic()
    models = None if args.workers else load_models(config)
    load_s = time.monotonic() - t_load

    def factory(emit: Any, targets: set[str]) -> CaptionPipeline | PoolPipeline:
        if args.workers:
            pool = PoolPipeline(config, args.workers, emit)
            pool.set_targets(targets)
            return pool
        pipeline = build_pipeline(config, emit, loaded=models).pipeline
        pipeline.set_targets(targets)
        return pipeline

    out_dir = args.json.parent / f"{args.json.stem}-events"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    capacity = 0
    for k in [int(x) for x in args.speakers.split(",")]:
        langs = [LANGS[i % len(LANGS)] for i in range(k)]
        cpu0, wall0 = time.process_time() + children_cpu_s(), time.monotonic()
        files, pipeline = run_speakers(factory, langs, out_dir, args.stream_s)
        cpu_s = time.process_time() + children_cpu_s() - cpu0  # the workers' too (with --workers)
        wall_s = time.monotonic() - wall0
        finals: list[float] = []
        per_speaker: dict[str, Any] = {}
        for sid, path in files.items():
            lang = sid.split("-")[0]
            meta = json.loads((EVALSET / "longform" / f"{lang}_fleurs_concat.json").read_text())
            if args.stream_s is not None:
                meta["segments"] = [g for g in meta["segments"] if g["end"] <= args.stream_s]
            lat = utterance_latencies(path, meta, TARGETS[lang])["final"]
            missing = len(meta["segments"]) - len(lat)
            finals += lat + [float("inf")] * missing  # an utterance never captioned: too late
            per_speaker[sid] = {
                "p95_s": p95(lat),
                "utterances": len(meta["segments"]),
                "missing": missing,
                # the words must not change with the load: WER of the finals on this cut
                "wer": live_wer(path, meta),
                "invented_runs": invented_runs(path, meta)["invented_runs"],
            }
        row = {
            "speakers": k,
            "langs": langs,
            "final_p50_s": round(statistics.median(finals), 3) if finals else None,
            "final_p95_s": p95(finals),
            "latencies_s": [round(v, 3) for v in finals if v != float("inf")],
            "per_speaker": per_speaker,
            "cpu_cores_used": round(cpu_s / wall_s, 2),
            "wall_s": round(wall_s, 1),
            # one pipeline: decodes and the recognizer calls they took (fewer when batched)
            "decodes": getattr(pipeline, "decodes", None),
            "recognizer_calls": getattr(pipeline, "recognizer_calls", None),
        }
        row["realtime"] = row["final_p95_s"] is not None and row["final_p95_s"] <= args.p95_goal_s
        runs.append(row)
        print(json.dumps({k2: v for k2, v in row.items() if k2 != "latencies_s"}), flush=True)
        if not row["realtime"]:
            break
        capacity = k
    if models is not None:
        models.router.close()
    return {
        "capacity_speakers": capacity,
        "goal": f"final caption p95 ≤ {args.p95_goal_s} s after speech end",
        "model": args.model,
        "device": args.device,
        "compute_type": args.compute_type,
        "threads": args.threads,
        "workers": args.workers,
        "batch_size": args.batch,
        "encoder_window": args.encoder_window,
        "final_beam_size": recognizer.final_beam_size,
        "model_load_s": round(load_s, 1),
        "runs": runs,
        "machine": {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def gpu_name() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| speakers | languages | final p50 / p95 s | real time | CPU cores used"
        " | WER % per speaker |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        wers = ", ".join(
            f"{sid.split('-')[0]} {s['wer']}"
            for sid, s in r.get("per_speaker", {}).items()
            if "wer" in s
        )
        lines.append(
            f"| {r['speakers']} | {','.join(r['langs'])} | {r['final_p50_s']} / {r['final_p95_s']}"
            f" | {'yes' if r['realtime'] else 'no'} | {r['cpu_cores_used']} | {wers or '–'} |"
        )
    lines.append(
        f"\n**Capacity: {report['capacity_speakers']} simultaneous speaker(s)** (Whisper"
        f" {report['model']} {report['compute_type']} on {report['device']},"
        f" {pool_text(report)}{report['goal']};"
        f" {report['machine']['cores']} cores).\n"
    )
    return "\n".join(lines) + "\n"


def pool_text(report: dict[str, Any]) -> str:
    workers = report.get("workers") or 0
    batch = report.get("batch_size") or 1
    batched = f", batches of up to {batch} decodes" if batch > 1 else ""
    if not workers:
        return f"one pipeline of {report['threads']} thread(s){batched}, "
    return f"a pool of {workers} worker(s) of {report['threads']} thread(s){batched}, "


def plot(report: dict[str, Any], path: Path, goal_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    data = [r["latencies_s"] or [0.0] for r in report["runs"]]
    ax.boxplot(data, whis=(5, 95))
    ax.set_xticks(range(1, len(data) + 1), [str(r["speakers"]) for r in report["runs"]])
    ax.axhline(goal_s, ls="--", c="r", lw=1, label=f"goal p95 {goal_s} s")
    ax.set(
        xlabel="simultaneous speakers",
        ylabel="s after speech end",
        title=f"Final caption latency, Whisper {report['model']} ({report['device']})",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="base")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--threads", type=int, default=2, help="cpu_threads of each recognizer")
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="speech worker processes in a pool (0: one pipeline in this process)",
    )
    ap.add_argument(
        "--encoder-window",
        choices=["fit", "full"],
        default="fit",
        help="the recognizer's encoder window (full: Whisper's 30 s, a GPU worker's)",
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=1,
        help="decodes of different speakers sent to Whisper as one batch (a GPU's: 8)",
    )
    ap.add_argument(
        "--final-beam",
        type=int,
        default=None,
        help="Whisper's beam for decodes a final may come from (default: RecognizerSettings')",
    )
    ap.add_argument("--p95-goal-s", type=float, default=3.0)
    ap.add_argument("--speakers", default="1,2,3,4,5", help="K to try in order; stops at a miss")
    ap.add_argument("--stream-s", type=float, default=None, help="cut each stream (seconds)")
    ap.add_argument("--json", type=Path, default=Path("bench/results/capacity-cpu.json"))
    args = ap.parse_args(argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = search(args)
    report["gpu"] = gpu_name() if args.device == "cuda" else None
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    text = markdown(report)
    png = args.json.with_suffix(".png")
    plot(report, png, args.p95_goal_s)
    text += f"\n![final caption latency per number of speakers]({png.name})\n"
    args.json.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

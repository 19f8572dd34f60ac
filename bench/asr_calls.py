"""What does one Whisper call cost on this machine, and what do the knobs buy?

Real evalset speech (../shared/evalset, read in place), :class:`interpret.transcribe.
WhisperRecognizer` (the code the pipeline runs) and, for reference, faster-whisper's own
``transcribe()``. Questions, one section each in the output:

1. ``latency``: seconds per call for 2/5/10/20 s buffers; base vs tiny.en; encoder window
   ``full`` (30 s padding, what ``transcribe()`` does) vs ``fit`` (buffer + margin); beam 1 vs 5;
   word timestamps on/off; ``transcribe()`` with and without ``chunk_length=10``.
2. ``wer``: FLEURS clips (en/es/de; tiny.en: en), WER (jiwer; lowercase, punctuation stripped),
   seconds per call, real-time factor, for each configuration.
3. ``interim``: buffers cut mid-speech (45 % and 70 % of a clip, language detected), as a
   streaming interim sees them: how often the guards fire (loops, invented text), language-id
   accuracy, temperature fallback (how often, what it costs).
4. ``threads``: cpu_threads 1 vs 2, and two decodes in parallel (two recognizers with one thread
   each, or one recognizer with ``num_workers=2``): latency and throughput for several speakers.

The machine may be shared: every row records ``others_cores``, the CPU others used meanwhile
(machine busy time minus ours, in cores); compare rows only when it is low. Writes JSON and a
markdown table (``--json OUT``, OUT with ``.md``) into bench/results/ (git-ignored).

    PYTHONPATH=. .venv/bin/python bench/asr_calls.py --json bench/results/asr_calls.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.procstat import system_cpu
from interpret.frames import ASR_SAMPLE_RATE
from interpret.models import resolve_model
from interpret.transcribe import WhisperRecognizer, words_text

REPO = Path(__file__).resolve().parent.parent
Json = dict[str, Any]
T = TypeVar("T")
FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


# -- measuring -----------------------------------------------------------------------------
@dataclass
class Load:
    wall_s: float = 0.0
    own_cpu_s: float = 0.0
    others_cores: float = 0.0


@contextmanager
def metered() -> Iterator[Load]:
    """Wall time, our CPU, and what others used meanwhile (cores)."""
    load = Load()
    s0, c0, t0 = system_cpu(), time.process_time(), time.perf_counter()
    yield load
    s1, c1, t1 = system_cpu(), time.process_time(), time.perf_counter()
    tick = 1 / os.sysconf("SC_CLK_TCK")
    busy_s = ((s1.total - s0.total) - (s1.idle - s0.idle)) * tick
    load.wall_s = t1 - t0
    load.own_cpu_s = c1 - c0
    load.others_cores = max(0.0, (busy_s - load.own_cpu_s) / max(load.wall_s, 1e-6))


#: a measurement during which others used more than this many cores is redone
DISTURBED_CORES = 0.3
QUIET = {"wait_s": 120.0, "retries": 3}


def wait_quiet() -> float:
    """Wait (up to ``QUIET["wait_s"]``) until others use < 0.15 cores over one second; returns
    the last reading."""
    deadline = time.monotonic() + QUIET["wait_s"]
    while True:
        with metered() as load:
            time.sleep(1.0)
        if load.others_cores < 0.15 or time.monotonic() > deadline:
            return load.others_cores
        print(f"  waiting for a quiet machine (others use {load.others_cores:.2f} cores)")


def measured(fn: Callable[[], T]) -> tuple[Load, T]:
    """One measurement, redone (after waiting for quiet) while others disturbed it."""
    for _ in range(int(QUIET["retries"]) + 1):
        with metered() as load:
            value = fn()
        if load.others_cores <= DISTURBED_CORES:
            break
        wait_quiet()
    return load, value


def repeat(fn: Callable[[], Any], repeats: int) -> Json:
    times, others = [], []
    for _ in range(repeats):
        load, _ = measured(fn)
        times.append(load.wall_s)
        others.append(load.others_cores)
    return {
        "p50_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "others_cores": round(statistics.mean(others), 2),
    }


# -- data ----------------------------------------------------------------------------------
def evalset_dir(arg: str | None) -> Path:
    found = arg or os.environ.get("PARLEY_EVALSET") or str(REPO.parent / "shared" / "evalset")
    return Path(found)


def load_audio(path: Path) -> np.ndarray:
    from faster_whisper import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=ASR_SAMPLE_RATE), np.float32)


def fleurs_clips(evalset: Path, langs: tuple[str, ...]) -> list[Json]:
    clips = []
    for line in (evalset / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if "fleurs" in item["id"] and item["lang"] in langs:
            clips.append({**item, "samples": load_audio(evalset / item["audio"])})
    return clips


def speech_stream(evalset: Path) -> np.ndarray:
    """English long-form speech from its first utterance on (clips joined by 1 s gaps)."""
    meta = json.loads((evalset / "longform" / "en_fleurs_concat.json").read_text())
    audio = load_audio(evalset / meta["audio"])
    start = int(meta["segments"][0]["speech_start"] * ASR_SAMPLE_RATE)
    return audio[start:]


_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h if h else "<empty>") for r, h in pairs if r]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


# -- experiments ---------------------------------------------------------------------------
def recognizer(model_dir: Path, **kwargs: Any) -> WhisperRecognizer:
    r = WhisperRecognizer(model_dir, **kwargs)
    r.warm_up()
    return r


def latency(models: dict[str, Path], stream: np.ndarray, repeats: int, quick: bool) -> list[Json]:
    rows: list[Json] = []
    durations = (2.0, 5.0, 10.0, 20.0)
    for name, model_dir in models.items():
        lang = "en"
        for window in ("full", "fit"):
            r = recognizer(model_dir, encoder_window=window)
            # tiny.en is the comparison: greedy only
            beams = (1,) if quick or name.endswith(".en") else (1, 5)
            for beam in beams:
                for word_ts in (True, False) if beam == 1 else (True,):
                    for d in durations:
                        audio = stream[: int(d * ASR_SAMPLE_RATE)]

                        call = functools.partial(
                            r.recognize, audio, lang=lang, beam_size=beam, word_timestamps=word_ts
                        )
                        stats = repeat(call, repeats)
                        rows.append(
                            {
                                "model": name,
                                "how": f"recognize {window}",
                                "beam": beam,
                                "word_ts": word_ts,
                                "audio_s": d,
                                **stats,
                            }
                        )
                        print("latency", rows[-1], flush=True)
        rows += transcribe_baseline(name, model_dir, stream, repeats, durations)
    return rows


def _transcribe(model: Any, audio: np.ndarray, beam: int, chunk_length: int | None) -> Any:
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=beam,
        temperature=0.0,
        condition_on_previous_text=False,
        vad_filter=False,
        chunk_length=chunk_length,
    )
    return list(segments)  # the generator is lazy: the work happens here


def transcribe_baseline(
    name: str, model_dir: Path, stream: np.ndarray, repeats: int, durations: tuple[float, ...]
) -> list[Json]:
    """faster-whisper's own ``transcribe()`` (segments consumed), temperature 0, no VAD."""
    from faster_whisper import WhisperModel

    rows = []
    for chunk_length in (None, 10):
        # a fresh model per setting: chunk_length is sticky in faster-whisper's extractor
        model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
        warm = stream[:ASR_SAMPLE_RATE]
        list(model.transcribe(warm, language="en", chunk_length=chunk_length)[0])
        for beam in (1, 5) if chunk_length is None else (1,):
            for d in durations:
                audio = stream[: int(d * ASR_SAMPLE_RATE)]

                call = functools.partial(_transcribe, model, audio, beam, chunk_length)
                how = "transcribe()" + (f" chunk_length={chunk_length}" if chunk_length else "")
                row = {"model": name, "how": how, "beam": beam, "word_ts": False, "audio_s": d}
                rows.append({**row, **repeat(call, repeats)})
                print("latency", rows[-1], flush=True)
    return rows


WER_CONFIGS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # label, recognizer kwargs, recognize kwargs
    ("full b1", {"encoder_window": "full"}, {"beam_size": 1}),
    ("full b5", {"encoder_window": "full"}, {"beam_size": 5}),
    ("fit+1s b1", {"encoder_window": "fit", "fit_margin_s": 1.0}, {"beam_size": 1}),
    ("fit+2s b1", {"encoder_window": "fit", "fit_margin_s": 2.0}, {"beam_size": 1}),
    ("fit+2s b5", {"encoder_window": "fit", "fit_margin_s": 2.0}, {"beam_size": 5}),
    ("fit+2s b1 fallback", {"encoder_window": "fit", "temperatures": FALLBACK}, {"beam_size": 1}),
]


def wer_table(models: dict[str, Path], clips: list[Json], quick: bool) -> list[Json]:
    rows = []
    for name, model_dir in models.items():
        langs = ("en",) if name.endswith(".en") else ("en", "es", "de")
        configs = WER_CONFIGS[:5] if name.endswith(".en") else WER_CONFIGS
        if quick:
            configs = [c for c in configs if c[0] in ("full b1", "fit+2s b1")]
        for label, init, call in configs:
            r = recognizer(model_dir, **init)
            for lang in langs:
                subset = [c for c in clips if c["lang"] == lang]
                hyps, times, others, fallbacks = [], [], [], 0
                for clip in subset:
                    load, res = measured(
                        functools.partial(r.recognize, clip["samples"], lang=lang, **call)
                    )
                    hyps.append(words_text(res.words))
                    times.append(load.wall_s)
                    others.append(load.others_cores)
                    fallbacks += any(s.temperature > 0 for s in res.segments)
                audio_s = sum(len(c["samples"]) for c in subset) / ASR_SAMPLE_RATE
                rows.append(
                    {
                        "model": name,
                        "config": label,
                        "lang": lang,
                        "clips": len(subset),
                        "wer_pct": round(100 * wer([c["reference"] for c in subset], hyps), 1),
                        "call_p50_s": round(statistics.median(times), 3),
                        "rtf": round(sum(times) / audio_s, 3),
                        "fallbacks": fallbacks,
                        "others_cores": round(statistics.mean(others), 2),
                        "hyps": hyps,
                    }
                )
                print("wer", {k: v for k, v in rows[-1].items() if k != "hyps"}, flush=True)
        rows += wer_transcribe_baseline(name, model_dir, clips, langs)
    return rows


def _transcribe_offline(model: Any, audio: np.ndarray, lang: str) -> list[Any]:
    segments, _ = model.transcribe(audio, language=lang, beam_size=5)
    return list(segments)


def wer_transcribe_baseline(
    name: str, model_dir: Path, clips: list[Json], langs: tuple[str, ...]
) -> list[Json]:
    """faster-whisper ``transcribe()`` as an offline user runs it (beam 5, fallback on)."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
    rows = []
    for lang in langs:
        subset = [c for c in clips if c["lang"] == lang]
        hyps, times = [], []
        for clip in subset:
            load, segments = measured(
                functools.partial(_transcribe_offline, model, clip["samples"], lang)
            )
            hyps.append("".join(s.text for s in segments))
            times.append(load.wall_s)
        audio_s = sum(len(c["samples"]) for c in subset) / ASR_SAMPLE_RATE
        rows.append(
            {
                "model": name,
                "config": "transcribe() b5 fallback",
                "lang": lang,
                "clips": len(subset),
                "wer_pct": round(100 * wer([c["reference"] for c in subset], hyps), 1),
                "call_p50_s": round(statistics.median(times), 3),
                "rtf": round(sum(times) / audio_s, 3),
                "fallbacks": None,
                "others_cores": None,
                "hyps": hyps,
            }
        )
        print("wer", {k: v for k, v in rows[-1].items() if k != "hyps"}, flush=True)
    return rows


def interim(model_dir: Path, clips: list[Json], quick: bool) -> list[Json]:
    """Buffers cut mid-speech, language detected: what the guards do, what fallback costs."""
    rows = []
    configs: list[tuple[str, dict[str, Any]]] = [
        ("full b1", {"encoder_window": "full"}),
        ("fit+2s b1", {"encoder_window": "fit"}),
        ("fit+2s b1 fallback", {"encoder_window": "fit", "temperatures": FALLBACK}),
    ]
    for label, init in configs[:2] if quick else configs:
        r = recognizer(model_dir, **init)
        times: list[float] = []
        drops: dict[str, int] = {}
        lang_ok = fallbacks = empty = n = 0
        for clip in clips:
            for cut in (0.45, 0.7):
                audio = clip["samples"][: int(len(clip["samples"]) * cut)]
                load, res = measured(functools.partial(r.recognize, audio, lang=None))
                n += 1
                times.append(load.wall_s)
                lang_ok += res.lang == clip["lang"]
                empty += not res.words
                fallbacks += any(s.temperature > 0 for s in res.segments)
                for s in res.segments:
                    if s.dropped:
                        drops[s.dropped] = drops.get(s.dropped, 0) + 1
        rows.append(
            {
                "config": label,
                "buffers": n,
                "call_p50_s": round(statistics.median(times), 3),
                "call_max_s": round(max(times), 3),
                "lang_id_pct": round(100 * lang_ok / n, 1),
                "empty": empty,
                "fallbacks": fallbacks,
                "dropped_segments": drops,
            }
        )
        print("interim", rows[-1], flush=True)
    return rows


def _work(
    rec: WhisperRecognizer,
    audio: np.ndarray,
    n: int,
    latencies: list[float],
    lock: threading.Lock,
) -> None:
    for _ in range(n):
        t = time.perf_counter()
        rec.recognize(audio, lang="en")
        with lock:
            latencies.append(time.perf_counter() - t)


def threads(model_dir: Path, stream: np.ndarray, calls: int) -> list[Json]:
    """Several speakers: sequential with 2 or 1 threads vs two decodes in parallel."""
    rows = []
    setups: list[tuple[str, list[WhisperRecognizer]]] = [
        ("1 recognizer, cpu_threads=2, sequential", [recognizer(model_dir, cpu_threads=2)]),
        ("1 recognizer, cpu_threads=1, sequential", [recognizer(model_dir, cpu_threads=1)]),
        (
            "2 recognizers x cpu_threads=1, 2 threads",
            [recognizer(model_dir, cpu_threads=1) for _ in range(2)],
        ),
        (
            "1 recognizer num_workers=2 x cpu_threads=1, 2 threads",
            [recognizer(model_dir, cpu_threads=1, num_workers=2)] * 2,
        ),
    ]
    for d in (5.0, 10.0):
        audio = stream[: int(d * ASR_SAMPLE_RATE)]
        for window in ("fit", "full"):
            for label, recs in setups:
                for rec in recs:
                    rec.encoder_window = window
                latencies: list[float] = []
                lock = threading.Lock()

                wait_quiet()
                with metered() as load:
                    workers = [
                        threading.Thread(
                            target=_work, args=(rec, audio, calls // len(recs), latencies, lock)
                        )
                        for rec in recs
                    ]
                    for w in workers:
                        w.start()
                    for w in workers:
                        w.join()
                rows.append(
                    {
                        "setup": label,
                        "window": window,
                        "audio_s": d,
                        "calls": len(latencies),
                        "call_p50_s": round(statistics.median(latencies), 3),
                        "calls_per_s": round(len(latencies) / load.wall_s, 2),
                        "audio_s_per_s": round(len(latencies) * d / load.wall_s, 1),
                        "others_cores": round(load.others_cores, 2),
                    }
                )
                print("threads", rows[-1], flush=True)
    return rows


# -- report --------------------------------------------------------------------------------
def table(rows: list[Json], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def latency_pivot(rows: list[Json]) -> str:
    """One line per configuration, one column per buffer length (p50 seconds per call)."""
    durations = sorted({r["audio_s"] for r in rows})
    keys: dict[tuple[Any, ...], Json] = {}
    for r in rows:
        key = (r["model"], r["how"], r["beam"], r["word_ts"])
        entry = keys.setdefault(key, {"others": []})
        entry[r["audio_s"]] = r["p50_s"]
        entry["others"].append(r["others_cores"])
    head = ["model", "how", "beam", "word ts"] + [f"{d:g} s" for d in durations] + ["others"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, how, beam, wts), entry in keys.items():
        cells = [model, how, str(beam), "on" if wts else "off"]
        cells += [_cell(entry.get(d)) for d in durations]
        cells.append(f"{max(entry['others']):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(result: Json) -> str:
    parts = [
        "# Whisper call cost (bench/asr_calls.py)",
        "",
        f"{result['machine']['cores']} cores, {result['machine']['cpu']}; "
        f"faster-whisper {result['versions']['faster-whisper']}, "
        f"ctranslate2 {result['versions']['ctranslate2']}; int8; "
        f"{result['repeats']} repeats (p50). `others` = cores used by other processes meanwhile "
        "(max over the row): rows with others > 0.3 are disturbed.",
    ]
    if result.get("latency"):
        parts += ["", "## Seconds per call (p50)", "", latency_pivot(result["latency"])]
    if result.get("wer"):
        cols = ["model", "config", "lang", "clips", "wer_pct", "call_p50_s", "rtf", "fallbacks"]
        parts += ["", "## WER on FLEURS clips (language given)", "", table(result["wer"], cols)]
    if result.get("interim"):
        cols = list(result["interim"][0].keys())
        parts += [
            "",
            "## Interim-like buffers (cut at 45 %/70 % of each clip, language detected, base)",
            "",
            table(result["interim"], cols),
        ]
    if result.get("threads"):
        cols = list(result["threads"][0].keys())
        parts += [
            "",
            "## Several speakers (base, language given)",
            "",
            table(result["threads"], cols),
        ]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "asr_calls.json")
    parser.add_argument(
        "--evalset", default=None, help="default ../shared/evalset or $PARLEY_EVALSET"
    )
    parser.add_argument("--models", default="base,tiny.en")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--thread-calls", type=int, default=8)
    parser.add_argument(
        "--only", default="latency,wer,interim,threads", help="comma-separated sections"
    )
    parser.add_argument("--quick", action="store_true", help="fewer configurations")
    parser.add_argument("--quiet-wait", type=float, default=120.0, help="max s to wait for quiet")
    parser.add_argument("--retries", type=int, default=3, help="redo a disturbed measurement")
    args = parser.parse_args(argv)
    QUIET.update(wait_s=args.quiet_wait, retries=args.retries)

    import ctranslate2

    evalset = evalset_dir(args.evalset)
    models = {name: resolve_model(name) for name in args.models.split(",")}
    only = set(args.only.split(","))
    clips = fleurs_clips(evalset, ("en", "es", "de"))
    stream = speech_stream(evalset)
    base = models.get("base") or next(iter(models.values()))
    result: Json = {
        "machine": {
            "cores": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_start": os.getloadavg(),
        },
        "versions": {
            "faster-whisper": metadata.version("faster-whisper"),
            "ctranslate2": ctranslate2.__version__,
        },
        "repeats": args.repeats,
        "models": {k: str(v) for k, v in models.items()},
    }
    sections: dict[str, Callable[[], list[Json]]] = {
        "latency": lambda: latency(models, stream, args.repeats, args.quick),
        "wer": lambda: wer_table(models, clips, args.quick),
        "interim": lambda: interim(base, clips, args.quick),
        "threads": lambda: threads(base, stream, args.thread_calls),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for name, run in sections.items():
        if name in only:
            result[name] = run()
            result["machine"]["loadavg_end"] = os.getloadavg()
            # written after every section: an interrupted run keeps what it measured
            args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
            args.json.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

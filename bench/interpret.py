"""How fast and how accurate are live captions? Issues 3 and 12, on this machine.

For each language's long-form stream (../shared/evalset/longform/LANG_fleurs_concat.*) it runs
the live pipeline exactly as ``parley interpret --realtime`` does (audio at 1x on the wall clock),
scores the events with ../shared/tools/eval_captions.py (WER of finals, final and translated
latency after each utterance's ``speech_end``, first interim), recognizes the same clips offline
with the same model for the WER baseline, and scores translations with sacrebleu against the
FLORES references. ``--speakers K`` runs K streams of different languages at once in one
pipeline (simultaneous speakers on the same cores): with K = 2 every language is scored with the
next one of ``--langs`` talking at the same time (load).

``--streams plain,hard`` (issue 12): "plain" is the evalset's long-form, "hard" the same with
the pauses inside each sentence stretched to 0.6-2.5 s (bench/hard_streams.py, built into a
cache directory at run time). ``--runs N`` repeats every run; WER is reported as the mean and
the worst of the runs, plus "invented words": insertions in runs of ≥ 3 words in the jiwer
alignment of all finals against all references, per 1,000 reference words.

    PYTHONPATH=. .venv/bin/python bench/interpret.py --langs en,es,de,fr,pt \\
        --streams plain,hard --runs 3 --speakers 1,2 --json bench/results/interpret.json
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EVALSET = Path(os.environ.get("PARLEY_EVALSET", REPO.parent / "shared" / "evalset"))
SCORER = EVALSET.parent / "tools" / "eval_captions.py"
#: caption target per spoken language (pairs the engines installed here cover, and one that
#: none covers, to show the "no translation" path)
TARGETS = {"en": "es", "es": "en", "fr": "es", "pt": "es", "de": "en", "it": "es"}
#: streams made from the FLEURS long-forms
FLEURS_KINDS = ("plain", "hard", "hard-b", "noisy", "slow", "babble")
FLORES = {"en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn", "pt": "por_Latn"}


def source(kind: str, lang: str) -> tuple[Any, dict[str, Any], Path]:
    """A stream's audio, its reference and the reference's path: "plain" (the evalset's
    long-form) or one of bench/hard_streams.py's KINDS (hard, hard-b, heldout, heldout-hard)."""
    from server.file_captions import load_audio

    if kind != "plain":
        import numpy as np

        from bench.hard_streams import stream

        audio_path, ref = stream(kind, lang)
        return np.load(audio_path), json.loads(ref.read_text()), ref
    ref = EVALSET / "longform" / f"{lang}_fleurs_concat.json"
    audio = load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac")
    return audio, json.loads(ref.read_text()), ref


def invented_runs(events: Path, meta: dict[str, Any], min_run: int = 3) -> dict[str, int]:
    """Insertions in runs of ≥ ``min_run`` words (finals in start order vs all references)."""
    finals = [
        e
        for e in (json.loads(line) for line in events.read_text().splitlines() if line.strip())
        if e.get("event") == "final"
    ]
    finals.sort(key=lambda e: (float(e.get("start_s", 0)), float(e.get("emitted_s", 0))))
    return invented_in(meta, " ".join(e.get("text", "") for e in finals), min_run)


def invented_in(meta: dict[str, Any], text: str, min_run: int = 3) -> dict[str, int]:
    """Insertions in runs of ≥ ``min_run`` words of ``text`` against all references."""
    import jiwer

    ref = normalize(" ".join(seg["reference"] for seg in meta["segments"]))
    hyp = normalize(text) or "<empty>"
    out = jiwer.process_words(ref, hyp)
    runs = [
        c.hyp_end_idx - c.hyp_start_idx
        for c in out.alignments[0]
        if c.type == "insert" and c.hyp_end_idx - c.hyp_start_idx >= min_run
    ]
    return {"invented_runs": len(runs), "invented_words": sum(runs), "ref_words": len(ref.split())}


def score(events: Path, ref: Path, target: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(SCORER), str(events), str(ref), "--target", target],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def offline_wer(recognizer: Any, lang: str, audio: Any, meta: dict[str, Any]) -> tuple[float, int]:
    """Each utterance's clip recognized on its own, same model and settings: the baseline WER,
    and its own invented ≥ 3-word runs (the model's, not the streaming's)."""
    import jiwer

    from interpret.frames import ASR_SAMPLE_RATE
    from interpret.transcribe import words_text

    refs, hyps = [], []
    for seg in meta["segments"]:
        clip = audio[int(seg["start"] * ASR_SAMPLE_RATE) : int(seg["end"] * ASR_SAMPLE_RATE)]
        hyps.append(
            normalize(
                " ".join(words_text(r.words) for r in offline_decodes(recognizer, clip, lang))
            )
        )
        refs.append(normalize(seg["reference"]))
    wer = round(100 * jiwer.wer(" ".join(refs), " ".join(hyps)), 2)
    return wer, invented_in(meta, " ".join(hyps))["invented_runs"]


def offline_decodes(recognizer: Any, clip: Any, lang: str, prompt: str = "") -> list[Any]:
    """A clip recognized offline with the finals' beam (``final_beam_size``: issue 12's "beam
    5", whatever the clip's length): one decode, or, longer than Whisper's 30 s window (a slow
    speaker's sentence), halves cut at the quietest 0.2 s of its middle third, each decoded
    with the text before it as its prompt (Whisper's own long-form decoding)."""
    import numpy as np

    from interpret.frames import ASR_SAMPLE_RATE
    from interpret.transcribe import WINDOW_S, words_text

    if len(clip) <= WINDOW_S * ASR_SAMPLE_RATE:
        beam = recognizer.final_beam_size
        return [recognizer.recognize(clip, lang=lang, prompt=prompt, beam_size=beam)]
    frame = ASR_SAMPLE_RATE // 5
    third = len(clip) // 3
    energy = [
        float(np.mean(np.square(clip[i : i + frame], dtype=np.float64)))
        for i in range(third, 2 * third - frame, frame // 4)
    ]
    cut = third + int(np.argmin(energy)) * (frame // 4) + frame // 2
    head = offline_decodes(recognizer, clip[:cut], lang, prompt)
    before = f"{prompt} {' '.join(words_text(r.words) for r in head)}".strip()
    return head + offline_decodes(recognizer, clip[cut:], lang, before[-200:])


def normalize(text: str) -> str:
    import re
    import unicodedata

    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


def translation_quality(events: Path, meta: dict[str, Any], target: str) -> dict[str, Any]:
    """chrF and BLEU of the final translations, utterance by utterance, vs FLORES."""
    import sacrebleu

    finals = [json.loads(line) for line in events.open() if '"final"' in line]
    hyps, refs = [], []
    for seg in meta["segments"]:
        ref = seg.get("translations", {}).get(FLORES.get(target, ""))
        if not ref:
            continue
        mine = [e for e in finals if e["end_s"] > seg["start"] and e["start_s"] < seg["end"]]
        hyps.append(" ".join(e.get("translations", {}).get(target, "") for e in mine).strip())
        refs.append(ref)
    if not hyps or not any(hyps):
        return {"chrf": None, "bleu": None, "segments": len(hyps)}
    return {
        "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 1),
        "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 1),
        "segments": len(hyps),
    }


def run_streams(
    pipeline_factory: Any,
    langs: list[str],
    out_dir: Path,
    kind: str = "plain",
    run: int = 0,
    *,
    fast: bool = False,
) -> tuple[dict[str, Path], Any]:
    """Feed every language's stream at once (one speaker each), in real time, or (``fast``) as
    fast as the VAD goes, untranslated: the decoder is always behind, which gives the finals of
    real time (they depend only on the audio), not its latencies."""
    from server.file_captions import CaptionLog

    files = {lang: out_dir / f"{kind}-{lang}-k{len(langs)}-r{run}.jsonl" for lang in langs}
    sinks = {lang: CaptionLog(out=files[lang].open("w")) for lang in langs}

    def emit(frame: Any) -> None:
        sinks[frame.speaker_id].emit(frame)

    pipeline = pipeline_factory(emit, set() if fast else {TARGETS[lang] for lang in langs})
    audio = {lang: source(kind, lang)[0] for lang in langs}
    for lang in langs:
        pipeline.add_speaker(lang, lang)
    feed_realtime(pipeline, audio, sinks, fast=fast)
    return files, pipeline


def run_virtual_streams(
    models: Any,
    streaming: Any,
    langs: list[str],
    out_dir: Path,
    kind: str,
    run: int,
    decode_s: str,
    vad_settings: Any = None,
) -> tuple[dict[str, Path], Any]:
    """Every language's stream at once on a virtual clock (bench/virtual_feed.py)."""
    base_s, per_s = (float(x) for x in decode_s.split(","))
    from bench.virtual_feed import run_virtual

    files = {lang: out_dir / f"{kind}-{lang}-k{len(langs)}-r{run}.jsonl" for lang in langs}
    audio = {lang: source(kind, lang)[0] for lang in langs}
    suppressed = run_virtual(
        models.recognizer,
        models.vad,
        audio,
        files,
        settings=streaming,
        base_s=base_s,
        per_s=per_s,
        vad_settings=vad_settings,
    )
    return files, argparse.Namespace(suppressed=suppressed)


def feed_realtime(
    pipeline: Any, audio: dict[str, Any], sinks: dict[str, Any], *, fast: bool = False
) -> None:
    """Start ``pipeline``, push every speaker's audio (``speaker id → samples``) at once at 1×
    on the wall clock (``fast``: without waiting) in 100 ms chunks, each when its last sample
    has been spoken (as a microphone delivers it), drain it and close the sinks (their clock
    starts now)."""
    from interpret.frames import AudioChunk

    pipeline.start()
    t0 = time.monotonic()
    for sink in sinks.values():
        sink.t0 = t0
    step = 1600
    for i in range(0, max(len(a) for a in audio.values()), step):
        delay = t0 + (i + step) / 16000 - time.monotonic()
        if delay > 0 and not fast:
            time.sleep(delay)
        for speaker_id, a in audio.items():
            if i < len(a):
                pipeline.push(AudioChunk(speaker_id, a[i : i + step], i / 16000))
    pipeline.stop(drain=True, timeout_s=900.0 if fast else 30.0)
    for sink in sinks.values():
        sink.out.close()


CHARACTER_LANGS = {"zh", "ja", "ko"}  # scored by CER (no spaces between words)


def clip_errors(pipeline_factory: Any, recognizer: Any, langs: list[str]) -> list[dict[str, Any]]:
    """The evalset's single clips (every language in ``langs``) through the same pipeline, fed
    at 1x, against the same model offline: WER, or CER for zh/ja/ko."""
    import jiwer

    from interpret.transcribe import words_text
    from server.file_captions import feed_file, load_audio

    manifest = [json.loads(line) for line in (EVALSET / "manifest.jsonl").read_text().splitlines()]
    rows = []
    for lang in langs:
        clips = [c for c in manifest if c["lang"] == lang]
        refs, live, offline = [], [], []
        for clip in clips:
            audio = load_audio(EVALSET / clip["audio"])
            finals: list[Any] = []
            pipeline = pipeline_factory(
                lambda frame, finals=finals: finals.append(frame) if frame.is_final else None,
                set(),
            )
            pipeline.add_speaker("s", lang)
            pipeline.start()
            feed_file(pipeline, audio, speaker_id="s", realtime=True)
            pipeline.stop(drain=True)
            finals.sort(key=lambda f: f.start_s)
            sep = "" if lang in CHARACTER_LANGS else " "
            live.append(sep.join(f.text for f in finals))
            offline.append(
                words_text(
                    recognizer.recognize(
                        audio[: 30 * 16000], lang=lang, beam_size=recognizer.final_beam_size
                    ).words
                )
            )
            refs.append(clip["reference"])
        if lang in CHARACTER_LANGS:

            def chars(text: str) -> str:
                return "".join(ch for ch in text if ch.isalnum())

            metric = "cer"
            live_err = jiwer.cer([chars(r) for r in refs], [chars(h) for h in live])
            offline_err = jiwer.cer([chars(r) for r in refs], [chars(h) for h in offline])
        else:
            metric = "wer"
            live_err = jiwer.wer([normalize(r) for r in refs], [normalize(h) for h in live])
            offline_err = jiwer.wer([normalize(r) for r in refs], [normalize(h) for h in offline])
        row = {
            "lang": lang,
            "clips": len(clips),
            "metric": metric,
            "stream": round(100 * float(live_err), 2),
            "offline": round(100 * float(offline_err), 2),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def overridden(settings: Any, pairs: list[str]) -> Any:
    """``settings`` (a dataclass) with each ``NAME=VALUE`` of ``pairs`` replacing a field, the
    value read as the field's type ("none": None)."""
    for pair in pairs:
        name, _, value = pair.partition("=")
        current = getattr(settings, name)
        new: Any
        if value == "none":
            new = None
        elif isinstance(current, bool):
            new = value.lower() in ("1", "true", "yes")
        elif current is None:
            new = float(value)
        else:
            new = type(current)(value)
        settings = dataclasses.replace(settings, **{name: new})
    return settings


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--langs", default="en,es,de,fr,pt")
    ap.add_argument("--speakers", default="1", help="simultaneous speakers to try, e.g. 1,2,3,4")
    ap.add_argument("--model", default="base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-offline", action="store_true", help="skip the offline WER baseline")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a StreamingSettings override, e.g. --set sentence_pause_s=0.8",
    )
    ap.add_argument(
        "--vad",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help='a VadSettings override, e.g. --vad max_gain_db=0 ("none" for None)',
    )
    ap.add_argument(
        "--streams",
        default="plain",
        help="plain,hard; held out: hard-b,heldout,heldout-hard; new conditions: noisy,slow "
        "(see bench/hard_streams.py)",
    )
    ap.add_argument("--runs", type=int, default=1, help="runs of each stream (WER mean/worst)")
    ap.add_argument(
        "--final-beam",
        type=int,
        default=None,
        help="Whisper's beam for decodes a final may come from (RecognizerSettings."
        "final_beam_size; the offline figure uses it too)",
    )
    ap.add_argument(
        "--final-beam-max-s",
        type=float,
        default=None,
        help="the longest window decoded with the final beam (RecognizerSettings.final_beam_max_s)",
    )
    ap.add_argument(
        "--recognizer",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a RecognizerSettings override, e.g. --recognizer encoder_window=full",
    )
    ap.add_argument(
        "--feed",
        choices=("realtime", "fast", "virtual"),
        default="realtime",
        help="fast: push the audio as fast as the VAD goes, no translation (the decoder is"
        " always behind: the finals of real time, deterministic; latencies meaningless);"
        " virtual: the streaming policy on a virtual clock, each decode taking --decode-s"
        " (bench/virtual_feed.py: final latency independent of the machine's load)",
    )
    ap.add_argument(
        "--decode-s",
        default="0.05,0.08",
        help="--feed virtual: a decode's cost, BASE,PER: BASE s + PER s per s of its window",
    )
    ap.add_argument(
        "--first-of-group",
        action="store_true",
        help="with --speakers K > 1, only the first language of --langs as the scored one",
    )
    ap.add_argument(
        "--first-interim-s", type=float, default=None, help="StreamingSettings override"
    )
    ap.add_argument(
        "--interim-interval-s", type=float, default=None, help="StreamingSettings override"
    )
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "interpret.json")
    ap.add_argument(
        "--clips",
        default="",
        help="also score the evalset's single clips of these languages (e.g. it,zh,ja,ko)",
    )
    args = ap.parse_args()
    langs = [lang for lang in args.langs.split(",") if lang]
    out_dir = args.json.parent / "interpret-events"
    out_dir.mkdir(parents=True, exist_ok=True)

    from interpret.compose import PipelineConfig, build_pipeline, load_models
    from interpret.pipeline import CaptionPipeline
    from interpret.streaming import StreamingSettings
    from interpret.transcribe import RecognizerSettings
    from interpret.vad import VadSettings

    streaming = StreamingSettings()
    if args.first_interim_s is not None:
        streaming = dataclasses.replace(streaming, first_interim_after_s=args.first_interim_s)
    streaming = overridden(streaming, args.set)
    if args.interim_interval_s is not None:
        streaming = dataclasses.replace(streaming, interim_interval_s=args.interim_interval_s)
    recognizer_settings = RecognizerSettings(model=args.model, cpu_threads=args.threads)
    if args.final_beam is not None:
        recognizer_settings = dataclasses.replace(
            recognizer_settings, final_beam_size=args.final_beam
        )
    if args.final_beam_max_s is not None:
        recognizer_settings = dataclasses.replace(
            recognizer_settings, final_beam_max_s=args.final_beam_max_s
        )
    recognizer_settings = overridden(recognizer_settings, args.recognizer)
    vad_settings = overridden(VadSettings(), args.vad)
    config = PipelineConfig(recognizer=recognizer_settings, streaming=streaming, vad=vad_settings)
    models = load_models(config)  # once: every run's pipeline shares them
    recognizer, router = models.recognizer, models.router

    def factory(emit: Any, targets: set[str]) -> CaptionPipeline:
        pipeline = build_pipeline(config, emit, loaded=models).pipeline
        pipeline.set_targets(targets)
        return pipeline

    results: dict[str, Any] = {
        "model": args.model,
        "threads": args.threads,
        "vad": dataclasses.asdict(vad_settings),
        "recognizer": {
            k: v
            for k, v in dataclasses.asdict(recognizer_settings).items()
            if isinstance(v, (str, int, float, bool, tuple))
        },
        "runs": [],
    }
    kinds = [k for k in args.streams.split(",") if k]
    offline: dict[tuple[str, str], tuple[float, int]] = {}
    for kind in kinds:
        for k in [int(x) for x in args.speakers.split(",")] if langs else []:
            for lang in langs:
                if (
                    kind in FLEURS_KINDS
                    and not (EVALSET / "longform" / f"{lang}_fleurs_concat.json").exists()
                ):
                    continue  # no FLEURS long-form of this language (it: held out only)
                # the scored speaker first, then the next languages of --langs as load
                group = [langs[(langs.index(lang) + j) % len(langs)] for j in range(k)]
                for run in range(args.runs):
                    load0 = os.getloadavg()[0]
                    reused0 = getattr(recognizer, "encoder_reused", 0)
                    cpu0 = time.process_time()
                    wall0 = time.monotonic()
                    if args.feed == "virtual":
                        files, pipeline = run_virtual_streams(
                            models,
                            streaming,
                            group,
                            out_dir,
                            kind,
                            run,
                            args.decode_s,
                            vad_settings,
                        )
                    else:
                        files, pipeline = run_streams(
                            factory, group, out_dir, kind, run, fast=args.feed == "fast"
                        )
                    cpu = time.process_time() - cpu0
                    wall = time.monotonic() - wall0
                    _, meta, ref = source(kind, lang)
                    row: dict[str, Any] = {
                        "stream": kind,
                        "speakers": k,
                        "with": group[1:],
                        "lang": lang,
                        "target": TARGETS[lang],
                        "run": run,
                    }
                    row.update(score(files[lang], ref, TARGETS[lang]))
                    row.update(invented_runs(files[lang], meta))
                    row["suppressed"] = dict(getattr(pipeline, "suppressed", {}))
                    # speech translations made while a pause grew, and those a final used
                    row["speech_ahead"] = dict(getattr(pipeline, "speech_ahead", {}))
                    row["encoder_reused"] = getattr(recognizer, "encoder_reused", 0) - reused0
                    # interims that gave way to a decode a final waited for (1x only)
                    row["interims_abandoned"] = getattr(pipeline, "interims_abandoned", 0)
                    row["translation"] = translation_quality(files[lang], meta, TARGETS[lang])
                    row["latencies"] = utterance_latencies(files[lang], meta, TARGETS[lang])
                    row["cpu_s_per_audio_s"] = round(cpu / meta["duration_s"] / k, 3)
                    row["wall_s"] = round(wall, 1)
                    row["load_1min"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
                    if not args.no_offline and (kind, lang) not in offline:
                        audio, _, _ = source(kind, lang)
                        offline[(kind, lang)] = offline_wer(recognizer, lang, audio, meta)
                    row["offline_wer"], row["offline_invented_runs"] = offline.get(
                        (kind, lang), (None, None)
                    )
                    results["runs"].append(row)
                    print(json.dumps(row), flush=True)
                    args.json.write_text(json.dumps(results, indent=1))
                if k > 1 and args.first_of_group:
                    break
    results["summary"] = summarize(results["runs"])
    if args.clips:
        results["clips"] = clip_errors(factory, recognizer, args.clips.split(","))
    router.close()
    args.json.write_text(json.dumps(results, indent=1))
    args.json.with_suffix(".md").write_text(table(results))
    if results["runs"]:
        plot(results, args.json.with_suffix(".png"))
    print(table(results))


def utterance_latencies(events: Path, meta: dict[str, Any], target: str) -> dict[str, list[float]]:
    """Per utterance, as ../shared/tools/eval_captions.py counts them (for the plots): last
    final (and last translated final) overlapping the utterance, minus its ``speech_end``."""
    finals = [
        e
        for e in (json.loads(line) for line in events.read_text().splitlines() if line.strip())
        if e.get("event") == "final"
    ]
    out: dict[str, list[float]] = {"final": [], "translated": []}
    for seg in meta["segments"]:
        mine = [e for e in finals if e["end_s"] > seg["start"] and e["start_s"] < seg["end"]]
        end = seg.get("speech_end", seg["end"])
        if mine:
            out["final"].append(max(e["emitted_s"] for e in mine) - end)
        translated = [e for e in mine if (e.get("translations") or {}).get(target)]
        if translated:
            out["translated"].append(max(e["emitted_s"] for e in translated) - end)
    return out


def _pct(xs: list[float], q: float) -> float | None:
    """The percentile as eval_captions.py computes it (nearest rank)."""
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[max(0, min(len(xs) - 1, int(round(q * (len(xs) - 1)))))], 3)


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stream, speaker count and language over its runs: WER mean and worst, invented-word
    runs per 1,000 reference words, latencies over every utterance of every run."""
    import statistics

    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r.get("stream", "plain"), r["speakers"], r["lang"]), []).append(r)
    out = []
    for (kind, k, lang), rs in groups.items():
        final = [x for r in rs for x in r["latencies"]["final"]]
        translated = [x for r in rs for x in r["latencies"]["translated"]]
        ref_words = sum(r.get("ref_words", 0) for r in rs)
        suppressed: dict[str, int] = {}
        for r in rs:
            for reason, n in r.get("suppressed", {}).items():
                suppressed[reason] = suppressed.get(reason, 0) + n
        interims = [r["first_interim_after_start_p50"] for r in rs]
        out.append(
            {
                "stream": kind,
                "speakers": k,
                "lang": lang,
                "target": rs[0]["target"],
                "with": rs[0].get("with", []),
                "runs": len(rs),
                "offline_wer": rs[0].get("offline_wer"),
                "offline_invented_runs": rs[0].get("offline_invented_runs"),
                "wer_mean": round(statistics.mean(r["wer"] for r in rs), 2),
                "wer_worst": max(r["wer"] for r in rs),
                "wers": [r["wer"] for r in rs],
                "invented_runs": sum(r.get("invented_runs", 0) for r in rs),
                "invented_runs_per_1k": round(
                    1000 * sum(r.get("invented_runs", 0) for r in rs) / max(1, ref_words), 2
                ),
                "final_p50": _pct(final, 0.5),
                "final_p95": _pct(final, 0.95),
                "translated_p50": _pct(translated, 0.5),
                "translated_p95": _pct(translated, 0.95),
                "first_interim_p50": statistics.median(x for x in interims if x is not None)
                if any(x is not None for x in interims)
                else None,
                "finals_per_run": [r["finals"] for r in rs],
                "suppressed": suppressed,
                "load_1min": [r.get("load_1min") for r in rs],
            }
        )
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency distribution per stream/language/speakers, and WER live (mean, worst) vs offline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    summary = results.get("summary") or summarize(runs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    keys = sorted({(r.get("stream", "plain"), r["speakers"], r["lang"]) for r in runs})
    labels = [f"{kind} {lang} k={k}" for kind, k, lang in keys]
    data = []
    for kind, k, lang in keys:
        mine = [
            r
            for r in runs
            if (r.get("stream", "plain"), r["speakers"], r["lang"]) == (kind, k, lang)
        ]
        data.append(
            [x for r in mine for x in (r["latencies"]["translated"] or r["latencies"]["final"])]
        )
    left.boxplot(data, whis=(0, 100))
    for i, values in enumerate(data, start=1):
        left.scatter([i] * len(values), values, s=10, alpha=0.5)
    left.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
    left.axhline(1.5, ls="--", c="g", lw=1, label="goal p50 1.5 s")
    left.axhline(2.5, ls="--", c="r", lw=1, label="goal p95 2.5 s")
    left.set_ylabel("s after speech end")
    left.set_title("Translated final caption latency (final if none), all runs")
    left.legend(fontsize=8)
    single = [r for r in summary if r["speakers"] == 1 and r.get("offline_wer") is not None]
    x = range(len(single))
    right.bar([i - 0.27 for i in x], [r["offline_wer"] for r in single], 0.27, label="offline")
    right.bar([i for i in x], [r["wer_mean"] for r in single], 0.27, label="live, mean")
    right.bar([i + 0.27 for i in x], [r["wer_worst"] for r in single], 0.27, label="live, worst")
    right.set_xticks(list(x), [f"{r['stream']} {r['lang']}" for r in single], fontsize=8)
    right.set_ylabel("WER %")
    right.set_title(f"WER, Whisper {results['model']} int8, same model, same file")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict[str, Any]) -> str:
    out = io.StringIO()
    out.write(
        "| stream | speakers | lang→target | offline WER (invented runs)"
        " | live WER mean / worst (runs)"
        " | invented ≥3-word runs per 1k words | final p50 / p95 s | translated p50 / p95 s"
        " | first interim p50 s | guards |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    for r in results.get("summary") or summarize(results["runs"]):
        k = str(r["speakers"]) + (f" (+{','.join(r['with'])})" if r["with"] else "")
        cells = [
            r["stream"],
            k,
            f"{r['lang']}→{r['target']}",
            f"{r.get('offline_wer', '–')} ({r.get('offline_invented_runs', '–')})",
            f"{r['wer_mean']} / {r['wer_worst']} ({r['runs']})",
            f"{r['invented_runs_per_1k']} ({r['invented_runs']})",
            f"{r['final_p50']} / {r['final_p95']}",
            f"{r['translated_p50']} / {r['translated_p95']}",
            str(r["first_interim_p50"]),
            ", ".join(f"{k}={v}" for k, v in sorted(r["suppressed"].items())) or "–",
        ]
        out.write("| " + " | ".join(cells) + " |\n")
    out.write(
        f"\nModel {results['model']} int8, {results['threads']} threads, 2-core machine; latency"
        " from each utterance's speech_end (eval_captions.py), over every utterance of every run."
        " Goal: final translated p50 ≤ 1.5 s, p95 ≤ 2.5 s; live WER mean ≤ offline + 1.5,"
        " worst ≤ offline + 3; 0 invented 3-word runs.\n"
    )
    if results.get("clips"):
        out.write("\nSingle evalset clips, same pipeline at 1x vs the same model offline:\n\n")
        out.write("| lang | clips | metric | stream | offline |\n|---|---|---|---|---|\n")
        for c in results["clips"]:
            cells = [c["lang"], c["clips"], c["metric"].upper(), c["stream"], c["offline"]]
            out.write("| " + " | ".join(str(x) for x in cells) + " |\n")
    return out.getvalue()


if __name__ == "__main__":
    main()

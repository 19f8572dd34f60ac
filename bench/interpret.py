"""How fast and how accurate are live captions? Issue 3, acceptance point 5, on this machine.

For each language's long-form stream (../shared/evalset/longform/LANG_fleurs_concat.*) it runs
the live pipeline exactly as ``parley interpret --realtime`` does (audio at 1x on the wall clock),
scores the events with ../shared/tools/eval_captions.py (WER of finals, final and translated
latency after each utterance's ``speech_end``, first interim), recognizes the same clips offline
with the same model for the WER baseline, and scores translations with sacrebleu against the
FLORES references. ``--speakers K`` runs K streams of different languages at once in one
pipeline (simultaneous speakers on the same cores).

    PYTHONPATH=. .venv/bin/python bench/interpret.py --langs en,es,de,fr,pt \\
        --speakers 1,3 --json bench/results/interpret.json
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
TARGETS = {"en": "es", "es": "en", "fr": "es", "pt": "es", "de": "en"}
FLORES = {"en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn", "pt": "por_Latn"}


def score(events: Path, lang: str, target: str) -> dict[str, Any]:
    ref = EVALSET / "longform" / f"{lang}_fleurs_concat.json"
    out = subprocess.run(
        [sys.executable, str(SCORER), str(events), str(ref), "--target", target],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def offline_wer(recognizer: Any, lang: str, audio: Any, meta: dict[str, Any]) -> float:
    """Each utterance's clip recognized on its own, same model and settings: the baseline."""
    import jiwer

    from interpret.frames import ASR_SAMPLE_RATE
    from interpret.transcribe import words_text

    refs, hyps = [], []
    for seg in meta["segments"]:
        clip = audio[int(seg["start"] * ASR_SAMPLE_RATE) : int(seg["end"] * ASR_SAMPLE_RATE)]
        hyps.append(normalize(words_text(recognizer.recognize(clip, lang=lang).words)))
        refs.append(normalize(seg["reference"]))
    return round(100 * jiwer.wer(" ".join(refs), " ".join(hyps)), 2)


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


def run_streams(pipeline_factory: Any, langs: list[str], out_dir: Path) -> dict[str, Path]:
    """Feed every language's stream at once (one speaker each), in real time."""
    from server.captioning import CaptionLog, load_audio

    files = {lang: out_dir / f"{lang}-k{len(langs)}.jsonl" for lang in langs}
    sinks = {lang: CaptionLog(out=files[lang].open("w")) for lang in langs}

    def emit(frame: Any) -> None:
        sinks[frame.speaker_id].emit(frame)

    pipeline = pipeline_factory(emit, {TARGETS[lang] for lang in langs})
    audio = {
        lang: load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac") for lang in langs
    }
    for lang in langs:
        pipeline.add_speaker(lang, lang)
    feed_realtime(pipeline, audio, sinks)
    return files


def feed_realtime(pipeline: Any, audio: dict[str, Any], sinks: dict[str, Any]) -> None:
    """Start ``pipeline``, push every speaker's audio (``speaker id → samples``) at once at 1×
    on the wall clock in 100 ms chunks, drain it and close the sinks (their clock starts now)."""
    from interpret.frames import AudioChunk

    pipeline.start()
    t0 = time.monotonic()
    for sink in sinks.values():
        sink.t0 = t0
    step = 1600
    for i in range(0, max(len(a) for a in audio.values()), step):
        delay = t0 + i / 16000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for speaker_id, a in audio.items():
            if i < len(a):
                pipeline.push(AudioChunk(speaker_id, a[i : i + step], i / 16000))
    pipeline.stop(drain=True)
    for sink in sinks.values():
        sink.out.close()


CHARACTER_LANGS = {"zh", "ja", "ko"}  # scored by CER (no spaces between words)


def clip_errors(pipeline_factory: Any, recognizer: Any, langs: list[str]) -> list[dict[str, Any]]:
    """The evalset's single clips (every language in ``langs``) through the same pipeline, fed
    at 1x, against the same model offline: WER, or CER for zh/ja/ko."""
    import jiwer

    from interpret.transcribe import words_text
    from server.captioning import feed_file, load_audio

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
            offline.append(words_text(recognizer.recognize(audio[: 30 * 16000], lang=lang).words))
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
    from server.captioning import load_audio

    streaming = StreamingSettings()
    if args.first_interim_s is not None:
        streaming = dataclasses.replace(streaming, first_interim_after_s=args.first_interim_s)
    if args.interim_interval_s is not None:
        streaming = dataclasses.replace(streaming, interim_interval_s=args.interim_interval_s)
    config = PipelineConfig(
        recognizer=RecognizerSettings(model=args.model, cpu_threads=args.threads),
        streaming=streaming,
    )
    models = load_models(config)  # once: every run's pipeline shares them
    recognizer, router = models.recognizer, models.router

    def factory(emit: Any, targets: set[str]) -> CaptionPipeline:
        pipeline = build_pipeline(config, emit, loaded=models).pipeline
        pipeline.set_targets(targets)
        return pipeline

    results: dict[str, Any] = {"model": args.model, "threads": args.threads, "runs": []}
    for k in [int(x) for x in args.speakers.split(",")] if langs else []:
        groups = (
            [langs[i : i + k] for i in range(0, len(langs), k)]
            if k > 1
            else [[lang] for lang in langs]
        )
        groups = [g for g in groups if len(g) == k] or [langs[:k]]
        for group in groups:
            cpu0 = time.process_time()
            wall0 = time.monotonic()
            files = run_streams(factory, group, out_dir)
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - wall0
            for lang in group:
                meta = json.loads((EVALSET / "longform" / f"{lang}_fleurs_concat.json").read_text())
                row: dict[str, Any] = {"speakers": k, "lang": lang, "target": TARGETS[lang]}
                row.update(score(files[lang], lang, TARGETS[lang]))
                row["translation"] = translation_quality(files[lang], meta, TARGETS[lang])
                row["latencies"] = utterance_latencies(files[lang], meta, TARGETS[lang])
                row["cpu_s_per_audio_s"] = round(cpu / meta["duration_s"] / k, 3)
                row["wall_s"] = round(wall, 1)
                if k == 1 and not args.no_offline:
                    audio = load_audio(EVALSET / "longform" / f"{lang}_fleurs_concat.flac")
                    row["offline_wer"] = offline_wer(recognizer, lang, audio, meta)
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
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


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency distribution per run, and WER streaming vs offline per language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{r['lang']}→{r['target']} k={r['speakers']}" for r in runs]
    data = [r["latencies"]["translated"] or r["latencies"]["final"] for r in runs]
    left.boxplot(data, whis=(0, 100))
    for i, values in enumerate(data, start=1):
        left.scatter([i] * len(values), values, s=12, alpha=0.6)
    left.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=8)
    left.axhline(1.5, ls="--", c="g", lw=1, label="goal p50 1.5 s")
    left.axhline(2.5, ls="--", c="r", lw=1, label="goal p95 2.5 s")
    left.set_ylabel("s after speech end")
    left.set_title("Translated final caption latency (final if none)")
    left.legend(fontsize=8)
    single = [r for r in runs if r["speakers"] == 1 and r.get("offline_wer") is not None]
    x = range(len(single))
    right.bar([i - 0.2 for i in x], [r["wer"] for r in single], 0.4, label="streaming")
    right.bar([i + 0.2 for i in x], [r["offline_wer"] for r in single], 0.4, label="offline")
    right.set_xticks(list(x), [r["lang"] for r in single])
    right.set_ylabel("WER %")
    right.set_title(f"WER, Whisper {results['model']} int8, same model")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: dict[str, Any]) -> str:
    out = io.StringIO()
    out.write(
        "| speakers | lang→target | WER stream / offline | final p50 / p95 s"
        " | translated p50 / p95 s | first interim p50 s | chrF / BLEU | CPU s per audio s |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    for r in results["runs"]:
        t = r["translation"]
        cells = [
            str(r["speakers"]),
            f"{r['lang']}→{r['target']}",
            f"{r['wer']} / {r.get('offline_wer', '–')}",
            f"{r['final_latency_p50']} / {r['final_latency_p95']}",
            f"{r['translated_latency_p50']} / {r['translated_latency_p95']}",
            str(r["first_interim_after_start_p50"]),
            f"{t['chrf']} / {t['bleu']}",
            str(r["cpu_s_per_audio_s"]),
        ]
        out.write("| " + " | ".join(cells) + " |\n")
    out.write(
        f"\nModel {results['model']} int8, {results['threads']} threads, 2-core machine; latency"
        " from each utterance's speech_end (eval_captions.py). Goal: final translated p50 ≤ 1.5 s,"
        " p95 ≤ 2.5 s; streaming WER ≤ offline + 1.5; ≥ 3 speakers at p95 ≤ 3 s.\n"
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

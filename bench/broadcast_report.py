"""The markdown section and the plot of bench/broadcast.py (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the projection's audience and cache tier
AUDIENCE = 1_000_000
SHIELDS = 20
#: media playlists of a default broadcast with two channels and two caption languages:
#: 2 video + floor + 2 channels + original + 2 languages
PLAYLISTS = 8
AUDIO_KBPS = 96


def _s(d: dict[str, Any] | None, key: str = "median") -> str:
    if not d or key not in d:
        return "–"
    return f"{d[key]:g}"


def best_step(origin: dict[str, Any] | None) -> dict[str, Any] | None:
    if not origin:
        return None
    ok = [s for s in origin["steps"] if not s["stalls"] and s["started"] == s["viewers"]]
    return max(ok, key=lambda s: s["viewers"]) if ok else None


def projection(result: dict[str, Any]) -> list[str]:
    step = best_step(result.get("origin"))
    segment_s = result["segment_s"]
    lines = ["", "**Projection for 1 million viewers** (the arithmetic):", ""]
    if step is None:
        return [*lines, "(no origin step without a stall)"]
    viewers = step["viewers"]
    per_core = viewers / max(step["nginx_cpu_pct"] / 100, 1e-6)
    req = step["requests_per_s"] / viewers
    mbit = step["mbit_per_s"] / viewers
    top_kbps = 2500 * 1.1 + AUDIO_KBPS
    low_kbps = 800 * 1.1 + AUDIO_KBPS
    cdn_req = SHIELDS * PLAYLISTS * (1 / 1 + 1 / segment_s)
    all_kbps = (2500 + 800) + 3 * AUDIO_KBPS + 10
    lines += [
        f"- Measured: one nginx core served {viewers} viewers at {step['nginx_cpu_pct']:g} % of a"
        f" core → **{per_core:,.0f} viewers per origin core** (each {req:.2f} requests/s,"
        f" {mbit:.2f} Mbit/s on the 360p rendition: the test picture is simple, below the"
        f" rendition's 800 kbit/s cap; at the caps 360p is {low_kbps / 1000:.2f} and 720p"
        f" {top_kbps / 1000:.2f} Mbit/s with audio and TS overhead).",
        f"- Without a CDN: {AUDIENCE:,} / {per_core:,.0f} = {AUDIENCE / per_core:,.0f} origin"
        " cores,"
        f" {AUDIENCE:,} × {req:.2f} = {AUDIENCE * req / 1e6:,.1f} M requests/s and"
        f" {AUDIENCE:,} × {low_kbps / 1000:.2f}–{top_kbps / 1000:.2f} Mbit/s ="
        f" {AUDIENCE * low_kbps / 1e9:,.2f}–{AUDIENCE * top_kbps / 1e9:,.2f} Tbit/s (360p–720p):"
        " not an origin's job.",
        f"- Behind a CDN with a shield tier of {SHIELDS} nodes that collapse requests (one fetch"
        " per object per TTL: playlists `max-age=1`, segments immutable): the origin sees each"
        f" shield fetch each of the {PLAYLISTS} media playlists once per second and each new"
        f" segment once: {SHIELDS} × {PLAYLISTS} × (1 + 1/{segment_s:g}) = **{cdn_req:,.0f}"
        f" requests/s** at the origin, whatever the audience ({cdn_req / req:,.0f} viewers' worth"
        " of requests: a fraction of one core by the figure above).",
        f"- Origin egress: {SHIELDS} shields × every rendition ({all_kbps:,.0f} kbit/s: 2500 + 800"
        f" video, 3 × {AUDIO_KBPS} audio, captions) = **{SHIELDS * all_kbps / 1000:,.0f} Mbit/s**;"
        f" CDN egress to viewers {AUDIENCE * low_kbps / 1e9:,.2f}–{AUDIENCE * top_kbps / 1e9:,.2f}"
        " Tbit/s (360p–720p), the CDN's bill, not the origin's.",
        "- Latency adds nothing for the CDN tier beyond its fetch time: segments are published"
        " complete (temp file + rename) and playlists expire after 1 s, so an edge is at most 1 s"
        " staler than the origin (a player one playlist poll behind).",
    ]
    return lines


def markdown(result: dict[str, Any]) -> str:
    two = result.get("two_renditions", {})
    one = result.get("one_rendition", {})
    latency = two.get("latency", {})
    captions = two.get("captions", {})
    shown = two.get("shown_captions", {})
    chromium_cues = two.get("chromium_captions", {})
    vod = two.get("vod_captions", {})
    chromium = two.get("chromium", {})
    out = [
        "## Broadcast: latency, captions, worker CPU, origin capacity (bench/broadcast.py)",
        "",
        f"Measured {result['date']} ({result['mode']} form) on 2 shared cores; load average"
        f" before {' / '.join(result['load_before'])}, after {' / '.join(result['load_after'])}"
        " (other work on the machine: the timing figures are pessimistic). Segment length"
        f" **{result['segment_s']:g} s**, hls.js `liveSyncDuration`"
        f" {result.get('hold_back_s', 2.5):g} s (web/watch.js).",
        "",
        "| figure | median | p95 | goal |",
        "|---|---|---|---|",
        f"| **glass-to-glass, speaker's camera → the watch page's picture in headless Chromium**,"
        f" s | {_s(chromium.get('glass_s'))} | {_s(chromium.get('glass_s'), 'p95')} |"
        " ≤ 5 median |",
        f"| hls.js's own `latency` on that page, s | {_s(chromium.get('hls_latency_s'))} |"
        f" {_s(chromium.get('hls_latency_s'), 'p95')} | |",
        f"| glass-to-glass computed for hls.js (origin listing +"
        f" {latency.get('hold_back_s', 2):g} s hold-back), s | {_s(latency.get('player_s'))} |"
        f" {_s(latency.get('player_s'), 'p95')} | ≤ 5 median |",
        f"| glass-to-origin, camera → segment listed at /live/, s |"
        f" {_s(latency.get('origin_s'))} | {_s(latency.get('origin_s'), 'p95')} | |",
    ]
    for label, figures in (
        ("live, as the watch page in Chromium showed them", chromium_cues),
        ("live, as a player shows them (model)", shown),
        ("live, cue times in the WebVTT", captions),
        ("recording (VOD)", vod),
    ):
        out += [
            f"| {label}: caption cue start − speech start, s |"
            f" {_s(figures.get('start_offset_s'))} |"
            f" {_s(figures.get('start_offset_s'), 'p95')} | |",
            f"| {label}: \\|cue start − speech start\\|, s |"
            f" {_s(figures.get('abs_start_offset_s'))} |"
            f" {_s(figures.get('abs_start_offset_s'), 'p95')} | ≤ 1 |",
            f"| {label}: cue end − speech end, s | {_s(figures.get('end_offset_s'))} |"
            f" {_s(figures.get('end_offset_s'), 'p95')} | |",
        ]
    out += [
        "",
        f"Frames read: {latency.get('frames', 0)}; utterances matched:"
        f" {len(captions.get('utterances', []))} (cues {captions.get('cues', 0)}, audio alignment"
        f" correlation {captions.get('alignment_correlation', '–')}). Speech times: the evalset's"
        " VAD `speech_start`/`speech_end` per utterance of the English long form (looped), placed"
        " on the program's clock by correlating the HLS floor audio with the clip; each cue is"
        " matched to the utterance whose reference shares most of its words; per utterance its"
        " first cue's start and its last cue's end count. Live, the cues roll up from the"
        " interims (about one a second), each from where its new words begin in the utterance's"
        " audio (by their share of its words), the final completing it; an utterance the"
        " recognizer had no time to give interims for shows from its final only, late. A"
        f" caption segment is written {result.get('caption_wait_s', 2):g} s after its media"
        " (broadcast/webvtt.py, worker.py). *As the watch page showed them*: the page in"
        " headless Chromium (original-language track on) is polled every 80 ms for its active"
        " cues, and a cue first seen active after its start counts from then (a cue never seen"
        " active is left out; only utterances said after it began to look count). *As a player"
        " shows them (model)*: a cue whose caption segment was listed after the model player"
        " (as far behind the newest segment's end as hls.js) had passed its"
        " start counts from where that player then was. The recording shows the finals, each"
        " where its words were said (broadcast/vod.py).",
        "",
        "| broadcast worker + its ffmpeg | renditions | CPU % of one core | run-queue wait % |",
        "|---|---|---|---|",
    ]
    two_cpu = result.get("two_renditions_cpu", {})
    for run in (one, two_cpu, two):  # the worker's process tree: the worker, its ffmpeg
        if not run:
            continue
        cpu = run.get("worker_cpu", {})
        out.append(
            f"| {'captions on' if run.get('captions') else 'captions off'}, {run.get('seconds')} s"
            f" | {run.get('renditions', '–')} | {cpu.get('cpu_pct', '–')} |"
            f" {cpu.get('runqueue_wait_pct', '–')} |"
        )
    measured = result.get("cpu_measured")
    if measured:
        out += [
            "",
            f"The captions-off runs: measured {measured['date']}, load average before"
            f" {' / '.join(measured['load_before'])}, after {' / '.join(measured['load_after'])}.",
        ]
    out += [
        "",
        "Run-queue wait is the time the worker's threads were ready but had no core (per cent of"
        " one core, summed over threads): above 100 % the two cores were saturated by others, so"
        " the CPU figures are what the worker got (x264 `ultrafast`, 25 fps, the test picture);"
        " the captions-on run also had the speech worker and Chromium competing; the stream kept"
        " up (glass-to-origin above).",
    ]
    origin = result.get("origin")
    out += ["", "Origin: nginx 1 worker process, config/nginx-broadcast.conf, a live replay of the"
            " recording above; each viewer one keep-alive connection, 3 playlists every second"
            " and each new segment (360p video, floor audio, original captions).", ""]  # fmt: skip
    if result.get("origin_measured"):
        m = result["origin_measured"]
        out[-1:] = [
            "",
            f"The origin steps: measured {m['date']} ({m.get('note', 'another run')}), load"
            f" average before {' / '.join(m['load_before'])}, after"
            f" {' / '.join(m['load_after'])}.",
            "",
        ]
    if origin:
        out += [
            "| viewers | stalls | requests/s | Mbit/s | nginx CPU % | clients CPU % |"
            " segment fetch p95 s | machine busy % of all cores |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in origin["steps"]:
            m = s["machine"]
            out.append(
                f"| {s['viewers']} | {s['stalls']} | {s['requests_per_s']:g} | {s['mbit_per_s']:g}"
                f" | {s['nginx_cpu_pct']:g} | {s['clients_cpu_pct']:g} |"
                f" {_s(s['segment_fetch_s'], 'p95')} |"
                f" {m.get('busy_pct_of_all_cores', '–')} |"
            )
        stalled = [s for s in origin["steps"] if s["stalls"]]
        if stalled:
            s = stalled[0]
            out += [
                "",
                f"At {s['viewers']} viewers simulated players stalled while nginx used"
                f" {s['nginx_cpu_pct']:g} % of a core and the machine was"
                f" {s['machine'].get('busy_pct_of_all_cores', '–')} % busy: the players (one"
                " Python process, sharing the two cores with everything else) fell behind, not"
                " the origin. Viewers per origin core below is therefore a linear extrapolation"
                " of nginx's CPU at the largest step without a stall.",
            ]
    out += projection(result)
    out += ["", "![broadcast latency and origin load](benchmarks/broadcast.png)", ""]
    return "\n".join(out) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    two = result.get("two_renditions", {})
    keys = ("chromium_captions", "shown_captions", "captions", "vod_captions")
    for x, key in enumerate(keys):
        rows = two.get(key, {}).get("utterances", [])
        left.plot([x - 0.1] * len(rows), [r["start_offset_s"] for r in rows], "o", label=None)
        left.plot([x + 0.1] * len(rows), [r["end_offset_s"] for r in rows], "x", label=None)
    left.set_xticks([0, 1, 2, 3], ["live, Chromium", "live, model", "live, WebVTT", "VOD"])
    left.axhline(-1, color="red", linestyle=":")
    left.axhline(1, color="red", linestyle=":")
    left.set_title("caption cue − speech: start (o), end (x)")
    left.set_ylabel("s (goal: within the dotted lines)")
    steps = (result.get("origin") or {}).get("steps", [])
    if steps:
        xs = [s["viewers"] for s in steps]
        right.plot(xs, [s["nginx_cpu_pct"] for s in steps], "o-", label="nginx CPU %")
        right.plot(
            xs, [s["clients_cpu_pct"] for s in steps], "s--", label="viewers (clients) CPU %"
        )
        right.set_xlabel("simulated viewers")
        right.set_ylabel("% of one core")
        right.legend()
    right.set_title("origin load")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

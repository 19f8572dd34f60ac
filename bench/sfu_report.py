"""Turn raw runs (``bench.sfu_run.run``) into the published figures, markdown and a plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from .control import Json
from .sfu_run import Window

GOAL_CPU_PER_SUBSCRIBER_PCT = 1.0
GOAL_LOOP_LAG_P99_MS = 20.0
GOAL_FPS_MIN = 25.0
#: other processes' load (percent of one core) above which a window is flagged as disturbed
OTHERS_LIMIT_PCT = 25.0
KINDS = ("audio", "video")


def _dt(before: Json, after: Json) -> float:
    return float(after["t_s"] - before["t_s"])


def _subscribers(window: Window) -> tuple[dict[str, Json], dict[str, float], int]:
    """Per-subscriber rates, RTP packets/s received by kind, and packets lost, in ``window``."""
    per_sub: dict[str, Json] = {}
    pps = dict.fromkeys(KINDS, 0.0)
    lost = 0
    for name, after in window.after.items():
        if "subscribers" not in after:
            continue
        before = window.before[name]
        dt = _dt(before, after)
        for index, a in after["subscribers"].items():
            b = before["subscribers"].get(index)
            if b is None:
                continue
            per_sub[index] = {
                "process": name,
                "decodes": a["decodes"],
                "video_fps": round((a["video_frames"] - b["video_frames"]) / dt, 2),
                "audio_fps": round((a["audio_frames"] - b["audio_frames"]) / dt, 2),
            }
            for kind, counts in a["rtp"].items():
                old = b["rtp"].get(kind, {"packets": 0, "lost": 0})
                pps[kind] = pps.get(kind, 0.0) + (counts["packets"] - old["packets"]) / dt
                lost += counts["lost"] - old["lost"]
    return per_sub, pps, lost


def _server_pps(window: Window) -> dict[str, float] | None:
    before, after = window.before.get("server"), window.after.get("server")
    if not (before and after and before.get("rtp") and after.get("rtp")):
        return None
    dt = _dt(before, after)
    a, b = after["rtp"]["sent"], before["rtp"]["sent"]
    return {
        k: (a.get(k, {}).get("packets", 0) - b.get(k, {}).get("packets", 0)) / dt for k in KINDS
    }


def _server_ingest(window: Window) -> Json | None:
    """What reached the server from the publisher in ``window``: RTP packets (media + RTX) and
    losses by kind, complete video frames per second, keyframes and PLIs sent upstream."""
    before, after = window.before.get("server"), window.after.get("server")
    if not (before and after):
        return None
    dt = _dt(before, after)
    out: Json = {}
    if before.get("rtp") and after.get("rtp"):
        a, b = after["rtp"]["received"], before["rtp"]["received"]
        for kind in KINDS:
            new, old = a.get(kind, {}), b.get(kind, {})
            out[f"{kind}_pps"] = round((new.get("packets", 0) - old.get("packets", 0)) / dt, 1)
            out[f"{kind}_lost"] = new.get("lost", 0) - old.get("lost", 0)
    video_a, video_b = after["media"].get("video", {}), before["media"].get("video", {})
    if video_a and video_b:
        out["video_fps"] = round((video_a["frames_in"] - video_b["frames_in"]) / dt, 2)
        for key in ("keyframes_in", "pli_sent", "dropped_frames"):
            out[key] = video_a.get(key, 0) - video_b.get(key, 0)
    return out


def _publisher(window: Window) -> Json:
    before, after = window.before["publisher"], window.after["publisher"]
    dt = _dt(before, after)
    out: Json = {"video_fps": round((after["video_frames"] - before["video_frames"]) / dt, 2)}
    for kind in KINDS:
        a, b = after["rtp"].get(kind), before["rtp"].get(kind)
        if a and b:
            out[f"{kind}_kbps"] = round(8 * (a["bytes"] - b["bytes"]) / dt / 1000, 1)
            out[f"{kind}_pps"] = round((a["packets"] - b["packets"]) / dt, 1)
    return out


def _lag(window: Window, name: str) -> Json | None:
    after = window.after.get(name)
    return None if after is None else dict(after["loop_lag"])


def _join_steps(raw: Json) -> Json:
    """Median and max time from a subscriber's join to each step (joined, offer, connected)."""
    steps: dict[str, list[float]] = {}
    for ready in raw.get("subscribers_ready", {}).values():
        for timeline in ready.get("join_steps_s", {}).values():
            for step, value in timeline.items():
                if value is not None:
                    steps.setdefault(step, []).append(float(value))
    return {
        step: {"median": round(statistics.median(v), 3), "max": round(max(v), 3)}
        for step, v in steps.items()
    }


def _join_phase_video(raw: Json) -> Json | None:
    """Keyframes and PLIs at the server between the baseline and the loaded window (the joins)."""
    try:
        before = raw["baseline"].after["server"]["media"]["video"]
        after = raw["loaded"].before["server"]["media"]["video"]
    except KeyError:
        return None
    keys = ("keyframes_in", "pli_requests", "pli_sent")
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}


#: the processes whose CPU is the server's: the server, and the Janus behind a Parley whose
#: ``[media] backend`` is "janus" (bench/sfu_run.py names that child "janus")
SERVER_PARTS = ("server", "janus")


def _server_parts(window: Window) -> dict[str, float]:
    """% of one core of each server-side process in ``window``."""
    return {k: float(window.cpu[k]["cpu_pct"]) for k in SERVER_PARTS if k in window.cpu}


def _server_cpu(window: Window) -> float:
    return round(sum(_server_parts(window).values()), 2)


def summarize(raw: Json) -> Json:
    """The figures for one run (see bench/README.md for what each one means)."""
    cfg = raw["config"]
    n = int(cfg["subscribers"])
    base: Window = raw["baseline"]
    loaded: Window = raw["loaded"]
    cpu_base = _server_cpu(base)
    cpu_loaded = _server_cpu(loaded)
    marginal = cpu_loaded - cpu_base
    per_sub, pps, lost = _subscribers(loaded)
    forwarded = sum(pps.values())
    server_pps = _server_pps(loaded)
    fps = [s["video_fps"] for s in per_sub.values()]
    firsts_all = [
        v for r in raw.get("subscribers_ready", {}).values() for v in r["first_frame_s"].values()
    ]
    firsts = [float(v) for v in firsts_all if v is not None]
    lag = _lag(loaded, "server")
    violations = [
        v
        for r in [
            raw.get("publisher_ready", {}),
            *raw.get("subscribers_ready", {}).values(),
            *(f or {} for f in raw.get("finals", {}).values()),
        ]
        for v in r.get("violations", [])
    ]
    result: Json = {
        "subscribers": n,
        "seconds": cfg["seconds"],
        "server_mode": cfg["server"],
        "cpu_percent_per_subscriber": round(marginal / n, 3) if n else None,
        "forwarded_pps": round(forwarded, 1),
        "loop_lag_p99_ms": None if lag is None else lag["p99_ms"],
        "fps_min": min(fps) if fps else None,
        "first_frame_s": {
            "median": round(statistics.median(firsts), 3) if firsts else None,
            "max": round(max(firsts), 3) if firsts else None,
            "missing": len(firsts_all) - len(firsts),
        },
        "server_cpu_pct": {
            "baseline_n0": cpu_base,
            "loaded": cpu_loaded,
            "marginal": round(marginal, 2),
        },
        "server_cpu_parts": {"baseline_n0": _server_parts(base), "loaded": _server_parts(loaded)},
        "server_cpu_detail": {"baseline_n0": base.cpu["server"], "loaded": loaded.cpu["server"]},
        "forwarded_pps_by_kind": {k: round(v, 1) for k, v in pps.items()},
        "forwarded_pps_server": None if server_pps is None else round(sum(server_pps.values()), 1),
        "forwarded_pps_per_core": {
            "marginal": round(100 * forwarded / marginal) if marginal > 0 and n else None,
            "total": round(100 * forwarded / cpu_loaded) if cpu_loaded > 0 else None,
        },
        "packets_lost": lost,
        "server_ingest": {"baseline_n0": _server_ingest(base), "loaded": _server_ingest(loaded)},
        "loop_lag_ms": {"baseline_n0": _lag(base, "server"), "loaded": lag},
        "fps": {
            "min": min(fps) if fps else None,
            "median": round(statistics.median(fps), 2) if fps else None,
            "below_25": sum(1 for f in fps if f < GOAL_FPS_MIN),
        },
        "first_frame_s_all": sorted(firsts),
        "join_steps_s": _join_steps(raw),
        "join_phase_video": _join_phase_video(raw),
        "publisher": {
            **_publisher(loaded),
            "cpu": loaded.cpu["publisher"],
            "baseline": _publisher(base),
        },
        "server_media": {
            "before": loaded.before.get("server", {}).get("media"),
            "after": loaded.after.get("server", {}).get("media"),
        },
        "client_processes": {
            name: {"cpu": loaded.cpu[name], "loop_lag": _lag(loaded, name)}
            for name in loaded.cpu
            if name.startswith("subscribers")
        },
        "machine": {"baseline_n0": base.system, "loaded": loaded.system},
        "per_subscriber": per_sub,
        "decode_check": {
            name: f.get("decode_check")
            for name, f in raw["finals"].items()
            if f and f.get("decode_check")
        },
        "violations": violations,
        "exit_codes": raw.get("exit_codes", {}),
        "machine_busy_before_pct_of_one_core": raw.get("machine_busy_before_pct_of_one_core"),
        "config": cfg,
    }
    others = [w.system.get("others_pct_of_one_core", 0.0) for w in (base, loaded)]
    result["disturbed"] = max(others) > OTHERS_LIMIT_PCT
    result["goals"] = {
        "cpu_percent_per_subscriber_le_1": bool(
            n and result["cpu_percent_per_subscriber"] <= GOAL_CPU_PER_SUBSCRIBER_PCT
        ),
        "loop_lag_p99_le_20ms": lag is not None
        and lag["p99_ms"] is not None
        and lag["p99_ms"] <= GOAL_LOOP_LAG_P99_MS,
        "fps_min_ge_25": bool(fps) and min(fps) >= GOAL_FPS_MIN,
    }
    return result


def fit(results: list[Json]) -> Json | None:
    """Least-squares line through server CPU against N (each run's N = 0 baseline included)."""
    points = [(0.0, r["server_cpu_pct"]["baseline_n0"]) for r in results]
    points += [(float(r["subscribers"]), r["server_cpu_pct"]["loaded"]) for r in results]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if len(set(xs)) < 2:
        return None
    slope, intercept = statistics.linear_regression(xs, ys)
    return {
        "cpu_percent_per_subscriber": round(slope, 3),
        "intercept_pct": round(intercept, 2),
        "points": len(points),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: list[Json], fitted: Json | None) -> str:
    head = (
        "| N | server CPU % (N=0 → N) | % of a core per subscriber | forwarded pkt/s "
        "(server count) | pkt/s per core (marginal) | loop lag p50 / p99 / max ms "
        "| fps min / median | first frame median / max s | publisher video kbit/s, fps "
        "| client procs CPU % | machine busy % (steal) | others' load % of a core |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        lag = r["loop_lag_ms"]["loaded"] or {}
        pub = r["publisher"]
        clients = sum(c["cpu"]["cpu_pct"] for c in r["client_processes"].values())
        machine = r["machine"]["loaded"]
        lines.append(
            f"| {r['subscribers']} | {_fmt(r['server_cpu_pct']['baseline_n0'])} → "
            f"{_fmt(r['server_cpu_pct']['loaded'])} | {_fmt(r['cpu_percent_per_subscriber'], 2)} "
            f"| {_fmt(r['forwarded_pps'], 0)} ({_fmt(r['forwarded_pps_server'], 0)}) "
            f"| {_fmt(r['forwarded_pps_per_core']['marginal'])} "
            f"| {_fmt(lag.get('p50_ms'))} / {_fmt(lag.get('p99_ms'))} / {_fmt(lag.get('max_ms'))} "
            f"| {_fmt(r['fps']['min'])} / {_fmt(r['fps']['median'])} "
            f"| {_fmt(r['first_frame_s']['median'], 2)} / {_fmt(r['first_frame_s']['max'], 2)} "
            f"| {_fmt(pub.get('video_kbps'), 0)}, {_fmt(pub.get('video_fps'))} "
            f"| {_fmt(clients)} | {_fmt(machine['busy_pct_of_all_cores'])} "
            f"({_fmt(machine['steal_pct_of_all_cores'])}) "
            f"| {_fmt(machine.get('others_pct_of_one_core'))} |"
        )
    notes = [
        "",
        "CPU: percent of one core from /proc, server process alone. Per subscriber = (server CPU "
        "in the loaded window − server CPU in the same run's publisher-only window) / N.",
        "Forwarded pkt/s: RTP packets/s the subscribers' receivers counted (aiortc inbound-rtp "
        "packetsReceived); in brackets the server's own RTP sender counters.",
        "Others' load: machine busy time not used by this benchmark's processes (the machine "
        "may be shared); high values make every figure worse.",
        "Loop lag: lateness of a 10 ms timer on the server's event loop during the loaded window.",
        f"Goals at N = 32: ≤ {GOAL_CPU_PER_SUBSCRIBER_PCT} % of a core per subscriber, loop lag "
        f"p99 ≤ {GOAL_LOOP_LAG_P99_MS:.0f} ms, every subscriber ≥ {GOAL_FPS_MIN:.0f} fps.",
    ]
    if fitted is not None:
        notes.append(
            f"Least-squares fit over all runs: {fitted['cpu_percent_per_subscriber']} % "
            f"of a core per subscriber + {fitted['intercept_pct']} % fixed."
        )
    cfg = results[0]["config"] if results else {}
    notes.append(
        f"Server: `{cfg.get('server')}` mode, media isolation `{cfg.get('isolation')}`; "
        f"subscriber processes at nice {cfg.get('subscriber_nice')}; publisher "
        f"{cfg.get('video_kbps')} kbit/s VGA VP8 + Opus."
    )
    if cfg.get("profile"):
        notes.append("PROFILED: the server ran under cProfile; its CPU figures are inflated.")
    for r in results:
        if r["disturbed"]:
            notes.append(
                f"N={r['subscribers']}: DISTURBED: other processes used more than "
                f"{OTHERS_LIMIT_PCT:.0f} % of a core during a window; figures unreliable."
            )
        if r["violations"] or any(r["exit_codes"].values()):
            notes.append(
                f"N={r['subscribers']}: violations {r['violations']}, exit codes {r['exit_codes']}"
            )
    return "\n".join(lines + notes) + "\n"


def plot(results: list[Json], path: Path) -> bool:
    """CPU and loop lag against N; False when matplotlib is not installed (no plot then)."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    ns = [r["subscribers"] for r in results]
    fig, (ax_cpu, ax_lag) = plt.subplots(1, 2, figsize=(10, 4))
    ax_cpu.plot(ns, [r["server_cpu_pct"]["loaded"] for r in results], "o-", label="server")
    ax_cpu.set(xlabel="subscribers", ylabel="% of one core", title="Server CPU")
    ax_lag.plot(ns, [(r["loop_lag_ms"]["loaded"] or {}).get("p99_ms") for r in results], "o-")
    ax_lag.axhline(GOAL_LOOP_LAG_P99_MS, linestyle="--")
    ax_lag.set(xlabel="subscribers", ylabel="ms", title="Server loop lag p99")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True

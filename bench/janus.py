"""Parley next to Janus: the same publisher and N subscribers against each SFU, in one run.

Three arms per N (``--arms``), each with fresh processes, through the phases of
``bench/sfu_run.py`` (baseline window with the publisher only, loaded window with N subscribers):

- **Parley · aiortc**: Parley's own SFU (``[media] backend = "aiortc"``);
- **Parley · Janus backend**: Parley with ``[media] backend = "janus"``: its signaling, its
  rooms as private Janus VideoRooms (media/janus_room.py); the server's CPU is Parley's process
  + the janus process, each reported too;
- **Janus alone**: a standalone Janus whose clients speak its JSON API
  (``bench/janus_client.py``), the reference.

Debian's ``janus`` (VideoRoom plugin, WebSocket transport, API and admin secrets set, every other
plugin and transport disabled, no STUN) is installed with apt-get if missing and started with its
own config folder (``bench/janus_server.py``). The load is ``bench/sfu_peers.py``'s: a VGA VP8
publisher at a fixed ~1.2 Mbit/s + an Opus tone, and N subscribers in their own processes,
speaking Parley's protocol (on the Janus backend the publisher offers its own publishing
connection, PROTOCOL.md "Janus engine") or Janus's JSON API. CPU is each server's process tree
from /proc.

Janus's ICE (libnice) never gathers candidates on a loopback interface, so the whole benchmark
re-executes itself in a private network namespace (``unshare -n``, as root) holding ``lo`` and a
veth pair ``bench0``/``bench1`` (10.99.0.1/24): nothing outside the namespace is reachable.
Parley/aiortc's peers keep 127.0.0.1; Janus's (both Janus arms) use 10.99.0.1
(``ice_enforce_list = "bench0"``); both are in-kernel paths of the same namespace.

    PYTHONPATH=. .venv/bin/python bench/janus.py --sweep 1,4,8,16 --seconds 15 \\
        --json bench/results/janus.json

Figures per N and arm: marginal CPU (loaded − baseline, % of one core), **CPU per forwarded
stream** (marginal / (N × 2): one audio and one video stream per subscriber), forwarded RTP
packets/s (what the subscribers received) and packets/s per core; the least-squares slope over
the sweep for each arm; the ratios Parley · aiortc / Parley · Janus backend and Parley · aiortc
/ Janus alone (goal ≤ 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.janus_server import JanusUnavailableError, ensure_installed
from bench.sfu_report import summarize
from bench.sfu_run import REPO, RunConfig, Target, run

Json = dict[str, Any]
NETNS_ENV = "PARLEY_BENCH_NETNS"
STREAMS_PER_SUBSCRIBER = 2  # audio + video
GOAL_RATIO = 1.5
#: the arms of one run, in the order each N runs them: ``bench.sfu_run.RunConfig.target``, label
ARMS: tuple[tuple[Target, str], ...] = (
    ("parley", "Parley · aiortc"),
    ("parley-janus", "Parley · Janus backend"),
    ("janus", "Janus alone"),
)
NETNS_SETUP = (
    "ip link set lo up && ip link add bench0 type veth peer name bench1"
    " && ip addr add 10.99.0.1/24 dev bench0 && ip link set bench1 up && ip link set bench0 up"
)


def reexec_in_namespace(argv: list[str]) -> int:
    """Run this script again inside a fresh network namespace (see the module docstring)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        raise JanusUnavailableError("needs root, unshare and ip for a private network namespace")
    env = {**os.environ, NETNS_ENV: "1"}
    command = f'{NETNS_SETUP} && exec "$0" "$@"'
    script = str(Path(__file__).resolve())
    full = ["unshare", "-n", "sh", "-c", command, sys.executable, script, *argv]
    return subprocess.run(full, env=env, check=False).returncode


def per_stream(summary: Json) -> Json:
    """The comparison figures of one run."""
    n = int(summary["subscribers"])
    marginal = float(summary["server_cpu_pct"]["marginal"])
    streams = n * STREAMS_PER_SUBSCRIBER
    pps = float(summary["forwarded_pps"])
    return {
        "subscribers": n,
        "server_cpu_pct": summary["server_cpu_pct"],
        "server_cpu_parts": summary["server_cpu_parts"],
        "cpu_pct_per_stream": round(marginal / streams, 3) if streams else None,
        "streams_per_core": round(100 * streams / marginal) if streams and marginal > 0 else None,
        "forwarded_pps": pps,
        "forwarded_pps_per_core": round(100 * pps / marginal) if marginal > 0 else None,
        "fps_min": summary["fps_min"],
        "packets_lost": summary["packets_lost"],
        "first_frame_s": summary["first_frame_s"],
        "machine": summary["machine"],
        "publisher": summary["publisher"],
        "violations": summary["violations"],
    }


def _cpu(row: Json, window: str, part: str | None) -> float:
    """Server CPU of one window (``baseline_n0`` or ``loaded``): the total, or one process's."""
    if part is None:
        return float(row["server_cpu_pct"][window])
    return float(row["server_cpu_parts"][window].get(part, 0.0))


def slope(rows: list[Json], part: str | None = None) -> Json | None:
    """Least squares of server CPU (or of its ``part``: "server", "janus") against forwarded
    streams over every run (baselines at 0)."""
    xs = [0.0] * len(rows) + [float(r["subscribers"] * STREAMS_PER_SUBSCRIBER) for r in rows]
    ys = [_cpu(r, "baseline_n0", part) for r in rows] + [_cpu(r, "loaded", part) for r in rows]
    if len(set(xs)) < 2:
        return None
    k, c = statistics.linear_regression(xs, ys)
    pps = [r["forwarded_pps"] / max(1, r["subscribers"] * STREAMS_PER_SUBSCRIBER) for r in rows]
    per_stream_pps = statistics.mean(pps)
    return {
        "cpu_pct_per_stream": round(k, 4),
        "streams_per_core": round(100 / k) if k > 0 else None,
        "intercept_pct": round(c, 2),
        "forwarded_pps_per_core": round(100 * per_stream_pps / k) if k > 0 else None,
    }


def fit_arm(arm: str, rows: list[Json]) -> Json | None:
    """The arm's slope; for Parley on Janus also each process's (Parley's signaling, Janus)."""
    fitted = slope(rows)
    if fitted is not None and arm == "parley-janus":
        fitted["parts"] = {part: slope(rows, part) for part in ("server", "janus")}
    return fitted


def ratio(fit: Json, numerator: str, denominator: str) -> float | None:
    a, b = fit.get(numerator), fit.get(denominator)
    if not a or not b or b["cpu_pct_per_stream"] <= 0:
        return None
    return round(float(a["cpu_pct_per_stream"]) / float(b["cpu_pct_per_stream"]), 2)


def _parts(row: Json, arm: str) -> str:
    """Loaded-window CPU as Parley + Janus (a dash where the arm has no such process)."""
    loaded = row.get("server_cpu_parts", {}).get("loaded", {})
    if arm == "janus":  # the standalone Janus is the run's child named "server"
        parley, janus = None, loaded.get("server")
    else:
        parley, janus = loaded.get("server"), loaded.get("janus")
    fmt = [f"{v:.1f}" if v is not None else "–" for v in (parley, janus)]
    return " + ".join(fmt)


def markdown(report: Json) -> str:
    lines = [
        "| N | SFU | server CPU % (N=0 → N) | of which Parley + Janus (N) | % of a core per"
        " forwarded stream | forwarded streams per core | forwarded pkt/s | pkt/s per core"
        " | fps min | lost | others' load % of a core |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in report["runs"]:
        for arm, label in ARMS:
            r = pair.get(arm)
            if r is None:
                continue
            cpu = r["server_cpu_pct"]
            others = r["machine"]["loaded"].get("others_pct_of_one_core")
            lines.append(
                f"| {r['subscribers']} | {label} | {cpu['baseline_n0']:.1f} → {cpu['loaded']:.1f} |"
                f" {_parts(r, arm)} | {r['cpu_pct_per_stream']} |"
                f" {r.get('streams_per_core', '–')} | {r['forwarded_pps']:.0f} |"
                f" {r['forwarded_pps_per_core']} | {r['fps_min']} | {r['packets_lost']} |"
                f" {others if others is not None else '–'} |"
            )
    fit = report["fit"]
    lines.append("")
    slopes = [
        f"{label} {fit[arm]['cpu_pct_per_stream']} % = {fit[arm].get('streams_per_core', '–')}"
        f" streams per core ({fit[arm]['forwarded_pps_per_core']} pkt/s per core)"
        for arm, label in ARMS
        if fit.get(arm)
    ]
    if slopes:
        lines.append(
            "Slope over the sweep, % of one core per forwarded stream (forwarded streams and"
            " packets/s per core): " + "; ".join(slopes) + "."
        )
    parts = (fit.get("parley-janus") or {}).get("parts")
    if parts and parts.get("server") and parts.get("janus"):
        lines.append(
            f"Of Parley on Janus's slope: Parley's process {parts['server']['cpu_pct_per_stream']}"
            f" %, Janus {parts['janus']['cpu_pct_per_stream']} % per forwarded stream."
        )
    if report.get("ratio_backend") is not None:
        lines.append(
            f"**Ratio Parley · aiortc / Parley · Janus backend: {report['ratio_backend']}**"
            " (per forwarded stream, slopes)."
        )
    if report.get("ratio") is not None:
        verdict = "met" if report["goal_met"] else "missed"
        lines.append(
            f"**Ratio Parley · aiortc / Janus alone: {report['ratio']}** (goal ≤ {GOAL_RATIO}:"
            f" {verdict})."
        )
    arms = [label for arm, label in ARMS if any(arm in p for p in report["runs"])]
    lines.append(
        f"\n{report['janus_version']}; {report['environment']['cores']} cores; per N: "
        + ", then ".join(arms)
        + " (fresh processes), same publisher (VGA VP8 ~1.2 Mbit/s + Opus) and subscribers"
        " (aiortc). CPU: the server's process tree from /proc; for Parley on Janus, Parley's"
        " process + the janus process. Command: `" + report["command"] + "`.\n"
    )
    return "\n".join(lines) + "\n"


def plot(report: Json, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for (arm, label), style in zip(ARMS, ("o-", "^-", "s--"), strict=True):
        rows = [p[arm] for p in report["runs"] if arm in p]
        if not rows:
            continue
        ns = [0] + [r["subscribers"] for r in rows]
        base = statistics.mean(r["server_cpu_pct"]["baseline_n0"] for r in rows)
        left.plot(ns, [base] + [r["server_cpu_pct"]["loaded"] for r in rows], style, label=label)
        right.plot(
            [r["subscribers"] for r in rows],
            [r["forwarded_pps_per_core"] for r in rows],
            style,
            label=label,
        )
    left.set(xlabel="subscribers N", ylabel="% of one core", title="Server CPU vs N")
    right.set(xlabel="subscribers N", ylabel="packets/s per core", title="Forwarded pkt/s per core")
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sweep", default="1,4,8,16", help="subscriber counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="loaded window")
    parser.add_argument("--baseline-seconds", type=float, default=8.0)
    parser.add_argument("--warmup-seconds", type=float, default=3.0)
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/janus.json")
    parser.add_argument(
        "--arms",
        default=",".join(arm for arm, _ in ARMS),
        help="which of " + ", ".join(arm for arm, _ in ARMS) + " to run (default: all)",
    )
    args = parser.parse_args(argv)
    arms = [arm for arm, _ in ARMS if arm in args.arms.split(",")]
    unknown = set(args.arms.split(",")) - {arm for arm, _ in ARMS}
    if unknown or not arms:
        parser.error(f"--arms: unknown {sorted(unknown)}" if unknown else "--arms: none given")
    version = ensure_installed()
    if os.environ.get(NETNS_ENV) != "1":
        return reexec_in_namespace(argv)

    counts = [int(v) for v in args.sweep.split(",") if v.strip()]
    out: Path = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    pairs: list[Json] = []
    for n in counts:
        pair: Json = {}
        for target in arms:
            cfg = RunConfig(
                subscribers=n,
                seconds=args.seconds,
                baseline_s=args.baseline_seconds,
                warmup_s=args.warmup_seconds,
                quiet_wait_s=args.quiet_wait,
                target=target,
            )
            run_dir = out.parent / f"{out.stem}-runs" / f"{stamp}-n{n}-{target}"
            pair[target] = per_stream(summarize(run(cfg, run_dir)))
            pair[target]["logs"] = str(run_dir)
        pairs.append(pair)
        print(
            json.dumps(
                {
                    t: {
                        k: pair[t][k]
                        for k in ("subscribers", "cpu_pct_per_stream", "forwarded_pps", "fps_min")
                    }
                    for t in pair
                }
            ),
            flush=True,
        )

    fit: Json = {arm: fit_arm(arm, [p[arm] for p in pairs]) for arm in arms}
    to_janus = ratio(fit, "parley", "janus")
    report: Json = {
        "runs": pairs,
        "fit": fit,
        "ratio": to_janus,
        "ratio_backend": ratio(fit, "parley", "parley-janus"),
        "goal_ratio": GOAL_RATIO,
        "goal_met": to_janus is not None and to_janus <= GOAL_RATIO,
        "janus_version": version,
        "command": "python bench/janus.py " + " ".join(argv),
        "environment": {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    text = markdown(report)
    png = out.with_suffix(".png")
    if plot(report, png):
        text += f"\n![CPU vs N, Parley on aiortc, Parley on Janus, Janus alone]({png.name})\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

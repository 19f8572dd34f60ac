"""Parley next to Janus: the same publisher and N subscribers against each SFU, in one run.

Debian's ``janus`` (VideoRoom plugin, WebSocket transport, API and admin secrets set, every other
plugin and transport disabled, no STUN) is installed with apt-get if missing and started with its
own config folder (``bench/janus_server.py``). The load is ``bench/sfu_peers.py``'s: a VGA VP8
publisher at a fixed ~1.2 Mbit/s + an Opus tone, and N subscribers in their own processes,
speaking Parley's protocol or Janus's JSON API (``bench/janus_client.py``); each N runs Parley,
then Janus, with fresh processes, through the phases of ``bench/sfu_run.py`` (baseline window with
the publisher only, loaded window with N subscribers). CPU is each server's process tree from
/proc.

Janus's ICE (libnice) never gathers candidates on a loopback interface, so the whole benchmark
re-executes itself in a private network namespace (``unshare -n``, as root) holding ``lo`` and a
veth pair ``bench0``/``bench1`` (10.99.0.1/24): nothing outside the namespace is reachable.
Parley's peers keep 127.0.0.1, Janus's use 10.99.0.1 (``ice_enforce_list = "bench0"``); both are
in-kernel paths of the same namespace.

    PYTHONPATH=. .venv/bin/python bench/janus.py --sweep 1,4,8,16 --seconds 15 \\
        --json bench/results/janus.json

Figures per N and SFU: marginal CPU (loaded − baseline, % of one core), **CPU per forwarded
stream** (marginal / (N × 2): one audio and one video stream per subscriber), forwarded RTP
packets/s (what the subscribers received) and packets/s per core; the least-squares slope over
the sweep for each SFU; and the ratio Parley / Janus (goal ≤ 1.5).
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
from bench.sfu_run import REPO, RunConfig, run

Json = dict[str, Any]
NETNS_ENV = "PARLEY_BENCH_NETNS"
STREAMS_PER_SUBSCRIBER = 2  # audio + video
GOAL_RATIO = 1.5
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
        "cpu_pct_per_stream": round(marginal / streams, 3) if streams else None,
        "forwarded_pps": pps,
        "forwarded_pps_per_core": round(100 * pps / marginal) if marginal > 0 else None,
        "fps_min": summary["fps_min"],
        "packets_lost": summary["packets_lost"],
        "first_frame_s": summary["first_frame_s"],
        "machine": summary["machine"],
        "publisher": summary["publisher"],
    }


def slope(rows: list[Json]) -> Json | None:
    """Least squares of server CPU against forwarded streams over every run (baselines at 0)."""
    xs = [0.0] * len(rows) + [float(r["subscribers"] * STREAMS_PER_SUBSCRIBER) for r in rows]
    ys = [r["server_cpu_pct"]["baseline_n0"] for r in rows]
    ys += [r["server_cpu_pct"]["loaded"] for r in rows]
    if len(set(xs)) < 2:
        return None
    k, c = statistics.linear_regression(xs, ys)
    pps = [r["forwarded_pps"] / max(1, r["subscribers"] * STREAMS_PER_SUBSCRIBER) for r in rows]
    per_stream_pps = statistics.mean(pps)
    return {
        "cpu_pct_per_stream": round(k, 4),
        "intercept_pct": round(c, 2),
        "forwarded_pps_per_core": round(100 * per_stream_pps / k) if k > 0 else None,
    }


def markdown(report: Json) -> str:
    lines = [
        "| N | SFU | server CPU % (N=0 → N) | % of a core per forwarded stream | forwarded"
        " pkt/s | pkt/s per core | fps min | lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair in report["runs"]:
        for sfu in ("parley", "janus"):
            r = pair[sfu]
            cpu = r["server_cpu_pct"]
            lines.append(
                f"| {r['subscribers']} | {sfu} | {cpu['baseline_n0']:.1f} → {cpu['loaded']:.1f} |"
                f" {r['cpu_pct_per_stream']} | {r['forwarded_pps']:.0f} |"
                f" {r['forwarded_pps_per_core']} | {r['fps_min']} | {r['packets_lost']} |"
            )
    fit = report["fit"]
    lines.append("")
    if fit["parley"] and fit["janus"]:
        verdict = "met" if report["goal_met"] else "missed"
        lines.append(
            f"Slope over the sweep: Parley {fit['parley']['cpu_pct_per_stream']} %, Janus"
            f" {fit['janus']['cpu_pct_per_stream']} % of one core per forwarded stream;"
            f" forwarded packets/s per core: Parley {fit['parley']['forwarded_pps_per_core']},"
            f" Janus {fit['janus']['forwarded_pps_per_core']}. **Ratio Parley / Janus:"
            f" {report['ratio']}** (goal ≤ {GOAL_RATIO}: {verdict})."
        )
    lines.append(
        f"\n{report['janus_version']}; {report['environment']['cores']} cores; per N: Parley run,"
        " then Janus run, fresh processes, same publisher (VGA VP8 ~1.2 Mbit/s + Opus) and"
        " subscribers (aiortc). Command: `" + report["command"] + "`.\n"
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
    for sfu, style in (("parley", "o-"), ("janus", "s--")):
        rows = [p[sfu] for p in report["runs"]]
        ns = [0] + [r["subscribers"] for r in rows]
        base = statistics.mean(r["server_cpu_pct"]["baseline_n0"] for r in rows)
        left.plot(ns, [base] + [r["server_cpu_pct"]["loaded"] for r in rows], style, label=sfu)
        right.plot(
            [r["subscribers"] for r in rows],
            [r["forwarded_pps_per_core"] for r in rows],
            style,
            label=sfu,
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
    args = parser.parse_args(argv)
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
        for target in ("parley", "janus"):
            cfg = RunConfig(
                subscribers=n,
                seconds=args.seconds,
                baseline_s=args.baseline_seconds,
                warmup_s=args.warmup_seconds,
                quiet_wait_s=args.quiet_wait,
                target=target,  # type: ignore[arg-type]
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

    fit = {sfu: slope([p[sfu] for p in pairs]) for sfu in ("parley", "janus")}
    ratio = None
    if fit["parley"] and fit["janus"] and fit["janus"]["cpu_pct_per_stream"] > 0:
        ratio = round(fit["parley"]["cpu_pct_per_stream"] / fit["janus"]["cpu_pct_per_stream"], 2)
    report: Json = {
        "runs": pairs,
        "fit": fit,
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio is not None and ratio <= GOAL_RATIO,
        "janus_version": version,
        "command": "python bench/janus.py " + " ".join(argv),
        "environment": {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    text = markdown(report)
    png = out.with_suffix(".png")
    if plot(report, png):
        text += f"\n![CPU vs N, Parley and Janus]({png.name})\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

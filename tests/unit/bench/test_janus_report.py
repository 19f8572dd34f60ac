"""bench/janus.py's figures and set-up without running anything: the three arms' slopes and
ratios, the markdown (also of a report from before the Janus-backend arm), the server
configuration that puts Parley on Janus, and which client each arm's load generators use."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench import janus as report
from bench import janus_server
from bench.janus_client import JanusClient, JanusEngineClient
from bench.sfu_peers import client_class
from bench.sfu_run import write_config
from server.settings import load_settings
from tests.support.client import ParleyClient


def _row(n: int, base: dict[str, float], loaded: dict[str, float]) -> dict[str, Any]:
    total_base, total_loaded = sum(base.values()), sum(loaded.values())
    streams = 2 * n
    pps = 178.0 * n
    marginal = total_loaded - total_base
    return {
        "subscribers": n,
        "server_cpu_pct": {
            "baseline_n0": total_base,
            "loaded": total_loaded,
            "marginal": marginal,
        },
        "server_cpu_parts": {"baseline_n0": base, "loaded": loaded},
        "cpu_pct_per_stream": round(marginal / streams, 3),
        "streams_per_core": round(100 * streams / marginal),
        "forwarded_pps": pps,
        "forwarded_pps_per_core": round(100 * pps / marginal),
        "fps_min": 30.0,
        "packets_lost": 0,
        "machine": {"loaded": {"others_pct_of_one_core": 12.5}},
    }


def _report(arms: tuple[str, ...] = ("parley", "parley-janus", "janus")) -> dict[str, Any]:
    runs = []
    for n in (1, 4, 8):
        pair = {
            # Parley on aiortc: 1.0 % per stream; on Janus: Parley 0.1 + Janus 0.4; Janus 0.5
            "parley": _row(n, {"server": 5.0}, {"server": 5.0 + 2.0 * n}),
            "parley-janus": _row(
                n, {"server": 2.0, "janus": 1.0}, {"server": 2.0 + 0.2 * n, "janus": 1.0 + 0.8 * n}
            ),
            "janus": _row(n, {"server": 1.0}, {"server": 1.0 + 1.0 * n}),
        }
        runs.append({arm: pair[arm] for arm in arms})
    fit = {arm: report.fit_arm(arm, [p[arm] for p in runs]) for arm in arms}
    return {
        "runs": runs,
        "fit": fit,
        "ratio": report.ratio(fit, "parley", "janus"),
        "ratio_backend": report.ratio(fit, "parley", "parley-janus"),
        "goal_met": True,
        "janus_version": "Janus 1.1.2-1 (Debian package)",
        "command": "python bench/janus.py",
        "environment": {"cores": 2},
    }


def test_slopes_per_arm_parts_of_the_janus_backend_and_the_ratios() -> None:
    r = _report()
    assert r["fit"]["parley"]["cpu_pct_per_stream"] == pytest.approx(1.0)
    assert r["fit"]["parley-janus"]["cpu_pct_per_stream"] == pytest.approx(0.5)
    parts = r["fit"]["parley-janus"]["parts"]
    assert parts["server"]["cpu_pct_per_stream"] == pytest.approx(0.1)
    assert parts["janus"]["cpu_pct_per_stream"] == pytest.approx(0.4)
    assert r["ratio_backend"] == pytest.approx(2.0)
    assert r["ratio"] == pytest.approx(2.0)


def test_markdown_has_one_row_per_arm_with_parley_and_janus_parts() -> None:
    text = report.markdown(_report())
    rows = [line for line in text.splitlines() if line.startswith("| 4 |")]
    assert [row.split(" | ")[1] for row in rows] == [
        "Parley · aiortc",
        "Parley · Janus backend",
        "Janus alone",
    ]
    parts = [row.split(" | ")[3] for row in rows]
    assert parts == ["13.0 + –", "2.8 + 4.2", "– + 5.0"]
    assert [row.split(" | ")[5] for row in rows] == ["100", "200", "200"]  # streams per core
    assert "Parley · Janus backend 0.5 % = 200 streams per core" in text
    assert "Parley · aiortc / Parley · Janus backend: 2.0" in text
    assert "Parley's process 0.1 %, Janus 0.4 %" in text


def test_markdown_of_a_report_without_the_janus_backend_arm() -> None:
    text = report.markdown(_report(("parley", "janus")))
    assert "Janus backend" not in text
    assert "Parley · aiortc / Janus alone: 2.0" in text


def test_parley_on_janus_gets_a_valid_janus_backend_configuration(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    write_config(config, port=9999, participants=6, isolation="inline", janus_ws_port=8188)
    media = load_settings(config).media
    assert media.backend == "janus"
    assert media.janus_url == "ws://127.0.0.1:8188"
    assert media.janus_admin_key == janus_server.ADMIN_KEY

    janus_config = janus_server.JanusConfig(tmp_path / "janus", 8188, parley_backend=True)
    janus_server.write_config(janus_config)
    videoroom = (tmp_path / "janus" / "janus.plugin.videoroom.jcfg").read_text()
    assert f'admin_key = "{janus_server.ADMIN_KEY}"' in videoroom
    assert "lock_rtp_forward = true" in videoroom
    assert f"room-{janus_server.ROOM_ID}" not in videoroom  # Parley creates its rooms


@pytest.mark.parametrize(
    ("target", "role", "expected"),
    [
        ("parley", "publish", ParleyClient),
        ("parley-janus", "publish", JanusEngineClient),
        ("parley-janus", "subscribe", ParleyClient),
        ("janus", "subscribe", JanusClient),
    ],
)
def test_each_arm_uses_its_client(target: str, role: str, expected: type[ParleyClient]) -> None:
    assert client_class(argparse.Namespace(target=target, role=role)) is expected

"""One SFU benchmark run: the real server, one publisher and N subscribers, each phase timed.

Phases: server up -> publisher up -> warm-up -> **baseline window** (publisher only, N = 0) ->
N subscribers join at a fixed rate -> warm-up -> **loaded window** -> everyone leaves -> stop.
CPU comes from /proc for every process (the server's alone); loop lag, media counters and frame
counts come from snapshots each process writes when asked (see ``bench.control``).
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.support.server import free_port

from .control import Child, ChildFailedError, Json
from .procstat import ProcessCpu, SystemCpu, system_cpu, system_usage, usage

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PROCESS_START_S = 4.0  # interpreter + aiortc import, before the first scheduled join
#: the SFU under test, see ``RunConfig.target``
Target = Literal["parley", "parley-janus", "janus"]


@dataclass(frozen=True, slots=True)
class RunConfig:
    subscribers: int
    seconds: float
    baseline_s: float = 10.0
    warmup_s: float = 3.0
    join_interval_s: float = 0.2
    subscribers_per_process: int = 16
    decoders: int = 1
    video_kbps: int = 1200
    server: Literal["probe", "cli"] = "probe"
    first_frame_timeout_s: float = 15.0
    quiet_wait_s: float = 120.0
    quiet_busy_pct: float = 20.0
    profile: bool = False
    #: the server's media placement: "inline" (one process) or "process" (media workers, whose
    #: CPU is counted with the server's; loop lag is then the signaling process's only)
    isolation: Literal["inline", "process"] = "inline"
    #: niceness of the subscriber processes. 0 by default: at nice 10 they starved at N = 32
    #: (UDP receive-buffer drops, lost packets, fps < 25) although the server was fine.
    subscriber_nice: int = 0
    #: the SFU under test (bench/janus.py compares them with the same publisher and subscribers):
    #: Parley on its own aiortc SFU; Parley with ``[media] backend = "janus"`` (its signaling,
    #: Debian's Janus VideoRoom forwarding: both processes' CPU count as the server's); or a
    #: standalone Janus whose clients speak its JSON API
    target: Target = "parley"
    #: Janus (libnice) never gathers candidates on a loopback interface: its runs happen in a
    #: private network namespace whose veth ``janus_interface`` has ``janus_address``
    janus_interface: str = "bench0"
    janus_address: str = "10.99.0.1"

    def budget_s(self) -> float:
        """Upper bound of the whole run, given to every child as its hard deadline."""
        joins = PROCESS_START_S + self.subscribers * self.join_interval_s
        return (
            60
            + 2 * self.warmup_s
            + self.baseline_s
            + joins
            + self.first_frame_timeout_s
            + (self.seconds)
        )


@dataclass(slots=True)
class Window:
    """One measurement window: CPU of every process, machine load, and each child's snapshots."""

    seconds: float
    cpu: dict[str, Json] = field(default_factory=dict)
    system: dict[str, float] = field(default_factory=dict)
    before: dict[str, Json] = field(default_factory=dict)
    after: dict[str, Json] = field(default_factory=dict)


def child_env() -> dict[str, str]:
    """The children's environment: this repo importable, and no proxy (loopback stays direct)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(PYTHONPATH=str(REPO), NO_PROXY=HOST, no_proxy=HOST, PYTHONUNBUFFERED="1")
    return env


def write_config(
    path: Path, *, port: int, participants: int, isolation: str, janus_ws_port: int | None = None
) -> None:
    """The server's TOML; with ``janus_ws_port`` its rooms run on that Janus (janus_server)."""
    janus = ""
    if janus_ws_port is not None:
        from .janus_server import ADMIN_KEY, API_SECRET
        from .janus_server import HOST as JANUS_HOST

        janus = (
            f'backend = "janus"\njanus_url = "ws://{JANUS_HOST}:{janus_ws_port}"\n'
            f'janus_api_secret = "{API_SECRET}"\njanus_admin_key = "{ADMIN_KEY}"\n'
            f'janus_tap_host = "{JANUS_HOST}"\n'
        )
    path.write_text(
        f'[server]\nhost = "{HOST}"\nport = {port}\n\n'
        f"[rooms]\nmax_participants_per_room = {max(16, participants)}\n\n"
        f'[media]\nisolation = "{isolation}"\nice_host_addresses = ["{HOST}"]\n{janus}\n'
        # joins arrive every join_interval_s, faster than the default join rate allows
        f"[limits]\njoins_per_room_per_s = 1000.0\njoin_burst = {max(16, participants)}\n"
        f"max_media_sections = {max(64, 2 * participants)}\n"
        f"max_sdp_chars = {max(65536, 1536 * 2 * participants)}\n",
        encoding="utf-8",
    )


def wait_healthy(port: int, server: Child, timeout_s: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ChildFailedError(f"server exited: {server.tail()}")
        try:
            with opener.open(f"http://{HOST}:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise ChildFailedError(f"server not healthy within {timeout_s} s: {server.tail()}")


def measure(children: list[Child], seconds: float) -> Window:
    """CPU of each child (from /proc) and their snapshots, at both ends of ``seconds``."""
    window = Window(seconds)

    def sample(into: dict[str, Json]) -> tuple[dict[str, ProcessCpu | None], SystemCpu]:
        cpu = {c.name: c.cpu() for c in children}
        sys_cpu = system_cpu()
        seqs = {c.name: c.request_snapshot() for c in children if c.has_channel}
        for c in children:
            if c.name in seqs:
                into[c.name] = c.wait_snapshot(seqs[c.name])
        return cpu, sys_cpu

    start = time.monotonic()
    cpu0, sys0 = sample(window.before)
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    cpu1, sys1 = sample(window.after)
    window.system = system_usage(sys0, sys1)
    for name, a in cpu0.items():
        b = cpu1.get(name)
        if a is None or b is None:
            raise ChildFailedError(f"{name} is gone")
        window.cpu[name] = usage(a, b).as_dict()
    # The machine may be shared: whatever is busy beyond our processes is someone else's load.
    ours = sum(float(c["cpu_pct"]) for c in window.cpu.values())
    busy = window.system["busy_pct_of_all_cores"] * window.system["cores"]
    window.system["ours_pct_of_one_core"] = round(ours, 1)
    window.system["others_pct_of_one_core"] = round(max(0.0, busy - ours), 1)
    return window


def wait_quiet(max_wait_s: float, busy_limit_pct: float) -> float:
    """Wait (at most ``max_wait_s``) until the machine uses < ``busy_limit_pct`` of one core over
    one second, so that other work does not distort the run; returns the last reading."""
    deadline = time.monotonic() + max_wait_s
    while True:
        a = system_cpu()
        time.sleep(1.0)
        reading = system_usage(a, system_cpu())
        busy = reading["busy_pct_of_all_cores"] * reading["cores"]
        if busy < busy_limit_pct or time.monotonic() >= deadline:
            return round(busy, 1)


def _start_server(
    cfg: RunConfig, run_dir: Path, env: dict[str, str], deadline_s: float, children: list[Child]
) -> tuple[Child, int]:
    """Start the server (appended to ``children`` at once, so it is always stopped); for
    ``parley-janus`` Janus first, as the child ``janus``, then Parley."""
    if cfg.target == "janus":
        return _start_janus(cfg, run_dir, env, children, name="server")
    janus_ws_port = None
    if cfg.target == "parley-janus":
        _janus, janus_ws_port = _start_janus(cfg, run_dir, env, children, name="janus")
    port = free_port()
    config = run_dir / "server.toml"
    write_config(
        config,
        port=port,
        participants=cfg.subscribers + 2,
        isolation=cfg.isolation,
        janus_ws_port=janus_ws_port,
    )
    if cfg.server == "cli":
        parley = Path(sys.executable).with_name("parley")
        argv = [str(parley)] if parley.exists() else [sys.executable, "-m", "server"]
        argv += ["serve", "--config", str(config), "--port", str(port)]
        server = Child(
            "server",
            argv,
            control_dir=run_dir,
            cwd=REPO,
            env=env,
            stop_signal=signal.SIGINT,
            has_channel=False,
        )
        children.append(server)
    else:
        argv = [
            sys.executable,
            "-m",
            "bench.sfu_server",
            "--config",
            str(config),
            "--port",
            str(port),
            "--control",
            str(run_dir),
            "--deadline-s",
            str(deadline_s),
        ]
        if cfg.profile:
            argv += ["--profile-dir", str(run_dir)]
        server = Child("server", argv, control_dir=run_dir, cwd=REPO, env=env)
        children.append(server)
        server.wait_ready(30)
    wait_healthy(port, server, 30)
    return server, port


def _start_janus(
    cfg: RunConfig, run_dir: Path, env: dict[str, str], children: list[Child], *, name: str
) -> tuple[Child, int]:
    from . import janus_server

    jcfg = janus_server.JanusConfig(
        folder=run_dir / "janus-config",
        ws_port=free_port(),
        interface=cfg.janus_interface,
        publishers=4,
        parley_backend=cfg.target == "parley-janus",
    )
    janus_server.write_config(jcfg)
    server = Child(
        name,
        janus_server.argv(jcfg),
        control_dir=run_dir,
        cwd=REPO,
        env=env,
        stop_signal=signal.SIGINT,
        has_channel=False,
    )
    children.append(server)
    janus_server.wait_listening(jcfg.ws_port, server.proc, 30)
    return server, jcfg.ws_port


def run(cfg: RunConfig, run_dir: Path, log: bool = True) -> Json:
    """Run once; returns the raw material (windows, ready and final files) for the report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = child_env()
    peers = [sys.executable, "-m", "bench.sfu_peers"]
    children: list[Child] = []
    raw: Json = {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}

    def say(text: str) -> None:
        if log:
            print(f"[n={cfg.subscribers}] {text}", file=sys.stderr, flush=True)

    if cfg.quiet_wait_s > 0:
        raw["machine_busy_before_pct_of_one_core"] = wait_quiet(
            cfg.quiet_wait_s, cfg.quiet_busy_pct
        )
        say(f"machine busy before start: {raw['machine_busy_before_pct_of_one_core']} % of a core")
    deadline_s = time.monotonic() + cfg.budget_s()
    try:
        server, port = _start_server(cfg, run_dir, env, deadline_s, children)
        server_side = list(children)  # the server, and Janus behind Parley for parley-janus
        url = f"ws://{HOST}:{port}" + ("" if cfg.target == "janus" else "/ws")
        common = ["--url", url, "--control", str(run_dir), "--deadline-s", str(deadline_s)]
        common += ["--target", cfg.target]
        if cfg.target != "parley":
            common += ["--ice-address", cfg.janus_address]
        say(f"server pid {server.pid} on {url}")
        publisher = Child(
            "publisher",
            [*peers, "publish", *common, "--video-kbps", str(cfg.video_kbps)],
            control_dir=run_dir,
            cwd=REPO,
            env=env,
        )
        children.append(publisher)
        raw["publisher_ready"] = publisher.wait_ready(40)
        time.sleep(cfg.warmup_s)
        say(f"baseline window {cfg.baseline_s:.0f} s (publisher only)")
        raw["baseline"] = measure([*server_side, publisher], cfg.baseline_s)
        subs: list[Child] = []
        if cfg.subscribers > 0:
            processes = math.ceil(cfg.subscribers / cfg.subscribers_per_process)
            t0_s = time.monotonic() + PROCESS_START_S
            decode = ",".join(str(i) for i in range(min(cfg.decoders, cfg.subscribers)))
            for p in range(processes):
                indices = ",".join(str(i) for i in range(p, cfg.subscribers, processes))
                name = f"subscribers{p}"
                nice = ["nice", "-n", str(cfg.subscriber_nice)] if cfg.subscriber_nice else []
                argv = [
                    *nice,
                    *peers,
                    "subscribe",
                    *common,
                    "--name",
                    name,
                    "--indices",
                    indices,
                    "--decode",
                    decode,
                    "--t0-s",
                    str(t0_s),
                    "--join-interval-s",
                    str(cfg.join_interval_s),
                    "--first-frame-timeout-s",
                    str(cfg.first_frame_timeout_s),
                ]
                subs.append(Child(name, argv, control_dir=run_dir, cwd=REPO, env=env))
                children.append(subs[-1])
            say(f"{cfg.subscribers} subscribers joining in {processes} process(es)")
            wait_s = PROCESS_START_S + cfg.subscribers * cfg.join_interval_s + 30
            raw["subscribers_ready"] = {c.name: c.wait_ready(wait_s) for c in subs}
        time.sleep(cfg.warmup_s)
        say(f"loaded window {cfg.seconds:.0f} s")
        raw["loaded"] = measure([*server_side, publisher, *subs], cfg.seconds)
    finally:
        raw["finals"] = {}
        for child in reversed(children):  # subscribers, publisher, then the server
            final = child.stop(timeout_s=20)
            raw["finals"][child.name] = final
            raw.setdefault("exit_codes", {})[child.name] = child.proc.returncode
    say("done")
    return raw

"""Acceptance (issue 4, point 3): zero egress.

The server (with live captions: Whisper + Apertium in the speech worker), and headless Chromium
pages run in a network namespace that has only loopback (as root; elsewhere in the host's
namespace, where the audit below still holds). A participant speaks (Chromium's fake microphone
plays evaluation-set speech); another reads Spanish captions. Meanwhile:

- every Python process of the server (the server and the workers it starts) runs a socket
  audit hook (tests/support/egress_audit): each distinct connect / sendto / sendmsg / bind /
  getaddrinfo is recorded with its host;
- /proc of the server shows the remote end of every socket it holds.

The host also broadcasts the room (issue 15): the broadcast worker (a Python process of the
server's, audited too) joins over loopback WebRTC and its ffmpeg writes HLS segments.

Then: the captioned meeting worked, and no record and no socket names a non-loopback address
(binds to the unspecified address are local; nothing in the audit is sent there); and with
the default [retention] nothing was written to the data directory.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    wait_until,
)
from tests.support.netns import Namespace
from tests.support.paths import REPO, evalset_dir
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.models]

AUDIT_DIR = REPO / "tests" / "support" / "egress_audit"
CHROMIUM = Path("/usr/bin/chromium")
CAPTION_TIMEOUT_S = 60.0

sync_api = pytest.importorskip("playwright.sync_api")


def is_local(host: str, *, bind: bool = False) -> bool:
    if host in ("localhost", "None", "''"):
        return True  # a name for loopback; None = an already connected socket's sendmsg
    if host.startswith("'") or host.startswith('"'):
        return True  # an AF_UNIX path
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # any other name would be a DNS query
    return address.is_loopback or (bind and address.is_unspecified)


def proc_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(table, local, remote) of every inet socket ``pid`` holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                found.append((table, decode(fields[1]), decode(fields[2])))
    return found


def decode(hex_address: str) -> str:
    """/proc/net's "0100007F:1F90" (little-endian words) as an address."""
    host, _ = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def remote_is_local(remote: str) -> bool:
    address = ipaddress.ip_address(remote)
    if address.is_unspecified:
        return True  # not connected (a listener, an unconnected UDP socket)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def family_pids(root: int) -> list[int]:
    """``root`` and its descendants (the speech worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    source = evalset_dir() / "audio" / "en" / "fw_jfk.flac"
    wav = tmp_path / "speech48k.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
        + ["-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le", str(wav)],
        check=True,
        timeout=60,
    )
    return wav


def test_captioned_meeting_opens_no_socket_off_loopback(
    netns: Namespace, speech_wav: Path, tmp_path: Path
) -> None:
    if not netns.prefix:
        if os.environ.get("PARLEY_TEST_NETNS") == "0":
            pytest.skip("PARLEY_TEST_NETNS=0: no loopback-only namespace, as asked")
        # In the host's namespace Chromium offers candidates on the LAN addresses too and the
        # server answers them (see tests/browser/test_browser.py): the namespace is the point here.
        pytest.fail("needs a loopback-only network namespace: run as root with unshare/nsenter")
    config = (
        f"[server]\ndata_dir = '{tmp_path / 'data'}'\n"
        "[media]\nice_host_addresses = ['127.0.0.1']\n[captions]\nenabled = true\n"
        "[logging]\nformat = 'json'\n"
        f"[broadcast]\ndir = '{tmp_path / 'live'}'\nfps = 5\n"
        "renditions = [{ width = 160, height = 90, video_kbps = 100 }]\n"
    )
    audit = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(AUDIT_DIR), env.get("PYTHONPATH")) if p)
    env["PARLEY_EGRESS_AUDIT"] = str(audit)
    server = ServerProcess(tmp_path, config, netns=netns, env=env)
    sockets: list[tuple[int, str, str, str]] = []
    watched: set[int] = set()
    try:
        server.start()
        assert "parley" in Path(f"/proc/{server.pid}/cmdline").read_text()  # nsenter exec'd it
        finals = meet(netns, speech_wav, tmp_path, server.http_url, server.pid, sockets, watched)
    finally:
        server.stop()
    print(f"finals in the browser: {[f['text'] for f in finals][:4]}")
    segments = list((tmp_path / "live" / "egress" / "v0").glob("*.ts"))
    assert segments, "the broadcast wrote no segment"
    spanish = [f["translations"].get("es", "") for f in finals]
    assert any(spanish), finals
    # privacy by default: no retention configured, so nothing was written to the data directory
    assert not (tmp_path / "data").exists()

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    pids = {r["pid"] for r in records}
    print(f"audit: {len(records)} distinct records from {len(pids)} processes; {records[:6]}")
    print(f"/proc: {len(sockets)} socket observations, e.g. {sorted(set(sockets))[:6]}")
    # the audit saw the server work: its listener, and media sent over loopback
    assert any(r["pid"] == server.pid and r["event"] == "socket.bind" for r in records)
    assert any(r["event"] == "socket.sendto" and r["host"] == "127.0.0.1" for r in records)
    # /proc covered the server's children too (the speech worker; it talks over pipes only,
    # so the audit, which logs socket calls, has nothing from it)
    assert len(watched) >= 2, watched
    outside = [r for r in records if not is_local(r["host"], bind=r["event"] == "socket.bind")]
    assert not outside, outside
    assert sockets, "no socket seen in /proc"
    assert all(remote_is_local(remote) for _, _, _, remote in sockets), sockets


def meet(
    netns: Namespace,
    wav: Path,
    tmp_path: Path,
    url: str,
    server_pid: int,
    sockets: list[tuple[int, str, str, str]],
    watched: set[int],
) -> list[dict[str, Any]]:
    """A speaking page and a reading page; returns the final captions the reader received."""
    executable = CHROMIUM
    if netns.prefix:
        executable = tmp_path / "chromium-in-netns"
        executable.write_text(f'#!/bin/sh\nexec {" ".join(netns.prefix)} {CHROMIUM} "$@"\n')
        executable.chmod(0o755)
    args = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    finals: list[dict[str, Any]] = []

    def on_frame(payload: str | bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "caption" and message.get("final"):
            finals.append(message)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), headless=True, args=args)
        try:
            pages = []
            for name in ("Reader", "Speaker"):
                page = browser.new_context().new_page()
                if name == "Reader":
                    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
                page.goto(f"{url}/?room=egress")
                page.get_by_label("Your name", exact=True).fill(name)
                page.get_by_role("button", name="Join", exact=True).click()
                wait_until(page, "() => window.parley && window.parley.state === 'joined'")
                pages.append(page)
                if name == "Reader":
                    page.evaluate("window.parley._send({type: 'captions', languages: ['es']})")
                    # the host (first in the room) broadcasts it
                    page.get_by_role("button", name="Broadcast to the public").click()
                    page.locator("#broadcast-badge").wait_for(state="visible")
            deadline = time.monotonic() + CAPTION_TIMEOUT_S
            live = tmp_path / "live" / "egress" / "v0"
            while not any(f["translations"].get("es") for f in finals) or not any(
                live.glob("*.ts")
            ):
                for pid in family_pids(server_pid):
                    watched.add(pid)
                    sockets += [(pid, *s) for s in proc_sockets(pid)]
                assert time.monotonic() < deadline, "no Spanish final caption in the browser"
                pages[0].wait_for_timeout(500)
        finally:
            browser.close()
    return finals

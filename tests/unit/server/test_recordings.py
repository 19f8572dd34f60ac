"""Kept broadcasts (server/recordings.py): signed links (a forged or expired one is refused,
paths outside a recording are not served), the host's listing, and the purge after
max_age_h that spares a recording still being written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from server.recordings import Recordings


def kept(root: Path, room: str, rid: str, *, ended: bool) -> Path:
    folder = root / room / rid
    (folder / "hls" / "v0").mkdir(parents=True)
    (folder / "hls" / "v0" / "index.m3u8").write_text("#EXTM3U\n")
    (folder / "recording.mp4").write_bytes(b"mp4")
    if ended:
        info = {"started_at": 1000.0, "duration_s": 12.0, "files": ["recording.mp4"]}
        (folder / "info.json").write_text(json.dumps(info))
    return folder


def test_links_listing_and_refusals(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path)
    kept(tmp_path, "room", "abc123", ended=True)
    [item] = recordings.listing("room")
    assert item["recording_id"] == "abc123" and item["duration_s"] == 12.0
    assert not item["recording"]
    [mp4] = item["files"]
    assert mp4["bytes"] == 3
    response = recordings.http_response(mp4["url"])
    assert response.status_code == 200 and response.body == b"mp4"
    assert "attachment" in response.headers["Content-Disposition"]
    playlist = recordings.http_response(item["vod_url"].replace("master", "v0/index"))
    assert playlist.status_code == 200
    base = item["vod_url"].rsplit("/hls/", 1)[0]
    forged = base.rsplit("/", 1)[0] + "/9999999999-" + "0" * 32 + "/recording.mp4"
    assert recordings.http_response(forged).status_code == 403
    expired = Recordings(tmp_path)
    old = expired.link_base("room", "abc123", now_s=0) + "recording.mp4"
    assert expired.http_response(old).status_code == 403
    for bad in ("info.json", "cues.jsonl", "../x.mp4", "v0/index.m3u8", "hls/../recording.mp4"):
        assert recordings.http_response(f"{base}/{bad}").status_code in (403, 404), bad
    assert Recordings(tmp_path).http_response(mp4["url"]).status_code == 403  # another key
    assert recordings.listing("elsewhere") == []


def test_purge_spares_what_is_recent(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path)
    old = kept(tmp_path, "room", "old", ended=True)
    os.utime(old / "info.json", (1000, 1000))
    growing = kept(tmp_path, "room", "growing", ended=False)
    for path in (growing, growing / "recording.mp4", growing / "hls"):
        os.utime(path, (1000, 1000))
    # a recording still being written: its newest playlist is recent
    assert recordings.purge(cutoff_s=5000) == 1
    assert not old.exists() and growing.exists()
    os.utime(growing / "hls" / "v0" / "index.m3u8", (1000, 1000))
    assert recordings.purge(cutoff_s=5000) == 1
    assert not (tmp_path / "room").exists()

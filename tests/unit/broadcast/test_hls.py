"""The HLS playlists the broadcast worker writes and reads (broadcast/hls.py): the master with
an audio rendition per channel and a subtitle track per language, ffmpeg's media playlists,
the WebVTT playlists that mirror them, and the first PTS of a segment."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from broadcast.hls import (
    AudioRendition,
    SegmentEntry,
    SubtitleTrack,
    VideoRendition,
    first_video_pts,
    master_playlist,
    parse_media_playlist,
    subtitle_playlist,
)

VIDEO = [VideoRendition("v0", 1280, 720, 2500), VideoRendition("v1", 640, 360, 800)]
AUDIO = [
    AudioRendition("a_floor", "Floor (original)", None, None),
    AudioRendition("a_fr", "Français (interpreter)", "fr", "fr"),
]
SUBS = [
    SubtitleTrack("s_orig", "Original (machine-generated)", None),
    SubtitleTrack("s_es", 'Español "auto" (machine-generated)', "es"),
]


def test_master_declares_audio_per_channel_and_subtitles_per_language() -> None:
    text = master_playlist(VIDEO, AUDIO, SUBS, audio_kbps=96)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:")]
    assert media[0] == (
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Floor (original)",DEFAULT=YES,'
        'AUTOSELECT=YES,CHANNELS="1",URI="a_floor/index.m3u8"'
    )
    assert 'LANGUAGE="fr"' in media[1] and "DEFAULT=NO" in media[1]
    assert 'URI="a_fr/index.m3u8"' in media[1]
    assert "TYPE=SUBTITLES" in media[2] and "LANGUAGE" not in media[2]
    assert 'NAME="Español \'auto\' (machine-generated)",LANGUAGE="es"' in media[3]
    variants = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 2
    assert "RESOLUTION=1280x720" in lines[variants[0]]
    assert 'AUDIO="aud",SUBTITLES="subs"' in lines[variants[0]]
    assert 'CODECS="avc1.42e01f,mp4a.40.2"' in lines[variants[0]]
    assert lines[variants[0] + 1] == "v0/index.m3u8"
    assert lines[variants[1] + 1] == "v1/index.m3u8"


def test_master_without_subtitles_names_no_group() -> None:
    text = master_playlist(VIDEO[:1], AUDIO[:1], [], audio_kbps=96)
    assert "SUBTITLES" not in text


FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-INDEPENDENT-SEGMENTS
#EXTINF:1.000000,
#EXT-X-PROGRAM-DATE-TIME:2026-01-06T03:59:44.104+0000
seg_00007.ts
#EXT-X-DISCONTINUITY
#EXTINF:0.933333,
#EXT-X-PROGRAM-DATE-TIME:2026-01-06T03:59:45.104+0000
seg_00008.ts
#EXT-X-ENDLIST
"""


def test_parse_ffmpeg_media_playlist_and_mirror_it() -> None:
    playlist = parse_media_playlist(FFMPEG_PLAYLIST)
    assert playlist.ended and playlist.target_duration_s == 1
    assert playlist.segments == (
        SegmentEntry(7, "seg_00007.ts", 1.0, "2026-01-06T03:59:44.104+0000", False),
        SegmentEntry(8, "seg_00008.ts", 0.933333, "2026-01-06T03:59:45.104+0000", True),
    )
    vtt = [
        SegmentEntry(
            s.sequence,
            f"seg_{s.sequence:05d}.vtt",
            s.duration_s,
            s.program_date_time,
            s.discontinuity,
        )
        for s in playlist.segments
    ]
    text = subtitle_playlist(vtt, target_duration_s=1, ended=True)
    again = parse_media_playlist(text)
    assert again.segments == tuple(vtt) and again.ended
    assert "#EXT-X-MEDIA-SEQUENCE:7" in text
    assert text.index("#EXT-X-DISCONTINUITY") < text.index("seg_00008.vtt")
    assert not parse_media_playlist(subtitle_playlist(vtt, target_duration_s=1, ended=False)).ended


def test_first_video_pts_of_an_ffmpeg_segment(tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed (make system-deps)")
    out = tmp_path / "seg.ts"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x36:rate=10",
            "-t",
            "0.5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-output_ts_offset",
            "3",
            "-f",
            "mpegts",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = min(int(line.strip(",")) for line in probe.stdout.split() if line.strip(","))
    assert first_video_pts(out.read_bytes()) == expected
    assert first_video_pts(b"\x47" + b"\x00" * 187) is None

"""The recording (broadcast/vod.py): live segments linked into the VOD before ffmpeg deletes
them, VOD playlists (EVENT, then VOD + ENDLIST), a correction rewriting every VOD caption
segment that shows the cue, the caption record replayed by a restarted worker, and the
whole-broadcast WebVTT/SRT on the VOD's timeline."""

from __future__ import annotations

from pathlib import Path

from broadcast.hls import SegmentEntry, SubtitleTrack
from broadcast.vod import VodRecorder, whole_srt, whole_vtt
from broadcast.webvtt import Cue, Epoch

TRACKS = (SubtitleTrack("s_orig", "Original", None), SubtitleTrack("s_es", "Español", "es"))


def live_playlist(first: int, count: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for n in range(first, first + count):
        lines += ["#EXTINF:1.000000,", f"id_{n:05d}.ts"]
    return "\n".join(lines) + "\n"


def make_live(live: Path, name: str, first: int, count: int) -> None:
    (live / name).mkdir(parents=True, exist_ok=True)
    for n in range(first, first + count):
        (live / name / f"id_{n:05d}.ts").write_bytes(b"ts%d" % n)
    (live / name / "index.m3u8").write_text(live_playlist(first, count))


def recorder(tmp_path: Path) -> VodRecorder:
    return VodRecorder(
        directory=tmp_path / "rec", live_dir=tmp_path / "live", tracks=TRACKS, room="r"
    )


def test_segments_are_linked_once_and_playlists_end_as_vod(tmp_path: Path) -> None:
    vod = recorder(tmp_path)
    make_live(tmp_path / "live", "v0", 0, 3)
    assert vod.collect_media(["v0", "a_floor"])
    make_live(tmp_path / "live", "v0", 2, 3)  # the live window moved on
    assert vod.collect_media(["v0"])
    assert not vod.collect_media(["v0"])
    assert [s.sequence for s in vod.media["v0"]] == [0, 1, 2, 3, 4]
    assert (tmp_path / "rec" / "hls" / "v0" / "id_00000.ts").read_bytes() == b"ts0"
    vod.write_playlists("#EXTM3U\n", ended=False)
    text = (tmp_path / "rec" / "hls" / "v0" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    vod.write_playlists("#EXTM3U\n", ended=True)
    text = (tmp_path / "rec" / "hls" / "v0" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.endswith("#EXT-X-ENDLIST\n")
    assert text.count(".ts") == 5


def test_a_correction_rewrites_every_segment_showing_the_cue_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    vod = recorder(tmp_path)
    epoch = Epoch(origin_s=100.0, mpegts=126_000)
    cue = Cue("c1", 101.5, 104.0, {"s_orig": "Helo", "s_es": "Hola"})
    other = Cue("c2", 103.0, 105.0, {"s_orig": "Fine"})
    vod.add_cue(cue)
    for n in range(4):
        vod.add_captions(SegmentEntry(n, f"id_{n:05d}.vtt", 1.0), epoch, float(n))
    folder = tmp_path / "rec" / "hls" / "s_orig"
    assert "Helo" in (folder / "id_00001.vtt").read_text()
    assert "Fine" not in (folder / "id_00003.vtt").read_text()
    # a final that arrives after its segments were written: they are written again, the cue
    # where its words were said (the live stream could only show it later)
    vod.add_cue(other)
    assert "00:00:03.000 --> 00:00:05.000\nFine" in (folder / "id_00003.vtt").read_text()
    assert "Fine" not in (folder / "id_00002.vtt").read_text()
    assert vod.correct("c1", {"s_orig": "Hello", "s_es": "Hola"}) == 3
    for n in (1, 2, 3):
        text = (folder / f"id_{n:05d}.vtt").read_text()
        assert "Hello" in text and "Helo" not in text
        assert text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n")
    assert vod.correct("nope", {"s_orig": "x"}) == 0
    again = recorder(tmp_path)
    again.adopt()
    assert [c.texts["s_orig"] for c in again.captions[1].cues] == ["Hello"]
    assert again.timeline("s_orig") == [(1.5, 4.0, "c1", "Hello"), (3.0, 5.0, "c2", "Fine")]
    assert again.timeline("s_es") == [(1.5, 4.0, "c1", "Hola")]


def test_whole_files() -> None:
    cues = [(1.5, 4.0, "c1", "Hello <there>"), (61.0, 62.25, "c2", "Bye")]
    assert whole_vtt(cues) == (
        "WEBVTT\n\nc1\n00:00:01.500 --> 00:00:04.000\nHello &lt;there&gt;\n\n"
        "c2\n00:01:01.000 --> 00:01:02.250\nBye\n"
    )
    assert whole_srt(cues) == (
        "1\n00:00:01,500 --> 00:00:04,000\nHello <there>\n\n2\n00:01:01,000 --> 00:01:02,250\nBye\n"
    )


def test_the_mixers_delay_follows_its_buffer() -> None:
    import numpy as np
    from av import AudioFrame

    from broadcast.mixing import AUDIO_RATE, PREBUFFER_SAMPLES, AudioMixer
    from broadcast.program import AudioSource

    mixer = AudioMixer()
    assert mixer.delay_s("nobody") == PREBUFFER_SAMPLES / AUDIO_RATE

    def pcm(chunks: int) -> AudioFrame:
        frame = AudioFrame.from_ndarray(
            np.zeros((1, 960 * chunks), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = AUDIO_RATE
        return frame

    mixer.push("p", pcm(15))  # 300 ms ahead, then 20 ms in for each 20 ms out
    for _ in range(300):
        mixer.push("p", pcm(1))
        mixer.tick({"floor": AudioSource(floor=True)}, ["p"])
    assert abs(mixer.delay_s("p") - 0.3) < 0.01

"""HLS playlists: the master playlist Parley writes itself (ffmpeg writes one playlist per
rendition, but takes at most one WebVTT stream per variant), reading ffmpeg's media playlists,
and the subtitle media playlists that mirror them. Pure: strings in, strings out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: the mpegts clock
MPEGTS_HZ = 90_000
TS_PACKET_BYTES = 188
AUDIO_GROUP = "aud"
SUBTITLE_GROUP = "subs"
AAC_LC = "mp4a.40.2"
#: H.264 Constrained Baseline, level 3.1 (x264 ``-profile:v baseline``; covers up to 720p30)
H264_BASELINE = "avc1.42e01f"


@dataclass(frozen=True, slots=True)
class VideoRendition:
    name: str
    width: int
    height: int
    video_kbps: int


@dataclass(frozen=True, slots=True)
class AudioRendition:
    """The floor (``channel`` None) or one interpretation channel's audio."""

    name: str
    label: str
    channel: str | None
    #: BCP 47 language of what is heard; None for the floor (its speakers' languages vary)
    language: str | None


@dataclass(frozen=True, slots=True)
class SubtitleTrack:
    """Captions in ``language``; ``language`` None: each caption in the language it was
    spoken in (the "original" track)."""

    name: str
    label: str
    language: str | None


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One segment of a media playlist."""

    sequence: int
    uri: str
    duration_s: float
    program_date_time: str | None = None
    discontinuity: bool = False


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration_s: int
    segments: tuple[SegmentEntry, ...]
    ended: bool
    discontinuity_sequence: int = 0


def _quoted(value: str) -> str:
    return '"' + value.replace('"', "'").replace("\n", " ") + '"'


def master_playlist(
    video: Sequence[VideoRendition],
    audio: Sequence[AudioRendition],
    subtitles: Sequence[SubtitleTrack],
    *,
    audio_kbps: int,
) -> str:
    """The multivariant playlist: each video variant refers to the audio group (the floor is
    the default; each channel a rendition with its LANGUAGE) and the subtitle group (one
    machine-generated caption track per language). URIs are relative to the master."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for index, rendition in enumerate(audio):
        attributes = [
            "TYPE=AUDIO",
            f"GROUP-ID={_quoted(AUDIO_GROUP)}",
            f"NAME={_quoted(rendition.label)}",
        ]
        if rendition.language:
            attributes.append(f"LANGUAGE={_quoted(rendition.language)}")
        attributes += [
            f"DEFAULT={'YES' if index == 0 else 'NO'}",
            "AUTOSELECT=YES",
            'CHANNELS="1"',
            f"URI={_quoted(f'{rendition.name}/index.m3u8')}",
        ]
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    for track in subtitles:
        attributes = [
            "TYPE=SUBTITLES",
            f"GROUP-ID={_quoted(SUBTITLE_GROUP)}",
            f"NAME={_quoted(track.label)}",
        ]
        if track.language:
            attributes.append(f"LANGUAGE={_quoted(track.language)}")
        attributes += [
            "DEFAULT=NO",
            "AUTOSELECT=NO",
            "FORCED=NO",
            f"URI={_quoted(f'{track.name}/index.m3u8')}",
        ]
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    for variant in video:
        bandwidth = (variant.video_kbps + audio_kbps) * 1000 * 11 // 10  # + TS overhead
        attributes = [
            f"BANDWIDTH={bandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
            f"CODECS={_quoted(f'{H264_BASELINE},{AAC_LC}')}",
            f"AUDIO={_quoted(AUDIO_GROUP)}",
        ]
        if subtitles:
            attributes.append(f"SUBTITLES={_quoted(SUBTITLE_GROUP)}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(f"{variant.name}/index.m3u8")
    return "\n".join(lines) + "\n"


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read a media playlist as ffmpeg's hlsenc writes it (EXTINF, PROGRAM-DATE-TIME,
    DISCONTINUITY, ENDLIST); unknown tags are skipped."""
    sequence = 0
    discontinuity_sequence = 0
    target = 1
    ended = False
    segments: list[SegmentEntry] = []
    duration: float | None = None
    pdt: str | None = None
    discontinuity = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            discontinuity_sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = line.split(":", 1)[1]
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#") and duration is not None:
            segments.append(SegmentEntry(sequence, line, duration, pdt, discontinuity))
            sequence += 1
            duration, pdt, discontinuity = None, None, False
    return MediaPlaylist(target, tuple(segments), ended, discontinuity_sequence)


def subtitle_playlist(
    segments: Sequence[SegmentEntry],
    *,
    target_duration_s: int,
    ended: bool,
    playlist_type: str | None = None,
) -> str:
    """A WebVTT media playlist over the same segments (sequence numbers, durations, dates,
    discontinuities) as the video's, so that players line them up; ``uri`` names the .vtt.
    Any media playlist of listed segments too (the recording's, ``playlist_type`` "EVENT" while
    it grows, "VOD" once ended)."""
    first = segments[0].sequence if segments else 0
    lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
    if playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    lines += [
        f"#EXT-X-TARGETDURATION:{target_duration_s}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{segment.duration_s:.6f},")
        if segment.program_date_time:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{segment.program_date_time}")
        lines.append(segment.uri)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def first_video_pts(ts: bytes) -> int | None:
    """The PTS (90 kHz) of the first video PES in an MPEG-TS segment, or None. Only what
    x264-in-mpegts needs: PES start packets with stream id 0xE0–0xEF and a PTS."""
    for offset in range(0, len(ts) - TS_PACKET_BYTES + 1, TS_PACKET_BYTES):
        packet = ts[offset : offset + TS_PACKET_BYTES]
        if packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte; payload unit start
            continue
        adaptation = (packet[3] >> 4) & 0x3
        start = 4
        if adaptation in (2, 3):
            start += 1 + packet[4]
        if adaptation == 2 or start + 14 > TS_PACKET_BYTES:
            continue
        pes = packet[start:]
        if pes[:3] != b"\x00\x00\x01" or not 0xE0 <= pes[3] <= 0xEF:
            continue
        if not pes[7] & 0x80:  # PTS_DTS_flags
            continue
        p = pes[9:14]
        return (
            ((p[0] >> 1) & 0x07) << 30
            | p[1] << 22
            | ((p[2] >> 1) & 0x7F) << 15
            | p[3] << 7
            | ((p[4] >> 1) & 0x7F)
        )
    return None

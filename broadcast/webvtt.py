"""Final captions as WebVTT segments on the program's timeline. Pure.

Cues are kept on the worker's monotonic clock. Each encoder run (ffmpeg restarts reset PTS) is an
*epoch*: its origin (the monotonic time of its first frame) and the PTS of that frame. A WebVTT
segment of an epoch maps its LOCAL time 0 to that PTS (``X-TIMESTAMP-MAP``), and cue times are
monotonic times minus the epoch's origin: a restart rebases every later segment on the new
origin and PTS, while the earlier ones keep theirs.

A final caption arrives a second or more after its words were said, usually after the segment
that holds them was published. A cue that missed its segments goes into the next one written,
its start moved to that segment's start (late, but shown), never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .hls import MPEGTS_HZ

#: a final stays on screen at least this long, at most this long
MIN_CUE_S = 2.0
MAX_CUE_S = 8.0
#: cues that ended this long before the latest segment are forgotten
KEEP_S = 60.0


@dataclass(frozen=True, slots=True)
class Cue:
    """One final caption: monotonic times, text per subtitle track name."""

    cue_id: str
    start_s: float
    end_s: float
    texts: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Epoch:
    """One encoder run: the monotonic time of its media time 0 and that instant's PTS."""

    origin_s: float
    mpegts: int


@dataclass(slots=True)
class VttPackager:
    """Cues in, one WebVTT document per track and segment out."""

    tracks: tuple[str, ...]
    cues: list[Cue] = field(default_factory=list)
    #: cue ids already placed in a segment (for the late-cue rule)
    placed: set[str] = field(default_factory=set)

    def add(self, cue_id: str, start_s: float, end_s: float, texts: Mapping[str, str]) -> None:
        """A final caption between monotonic ``start_s`` and ``end_s`` (the display time is
        stretched to MIN_CUE_S..MAX_CUE_S)."""
        end_s = min(max(end_s, start_s + MIN_CUE_S), start_s + MAX_CUE_S)
        kept = {track: text for track, text in texts.items() if track in self.tracks and text}
        if kept:
            self.cues.append(Cue(cue_id, start_s, end_s, kept))

    def correct(self, cue_id: str, texts: Mapping[str, str]) -> bool:
        """A corrected final: later segments show ``texts`` instead (True if the cue is kept)."""
        kept = {track: text for track, text in texts.items() if track in self.tracks and text}
        found = False
        for index, cue in enumerate(self.cues):
            if cue.cue_id == cue_id:
                self.cues[index] = Cue(cue.cue_id, cue.start_s, cue.end_s, kept)
                found = True
        return found

    def place(self, epoch: Epoch, start_s: float, duration_s: float) -> list[Cue]:
        """The cues shown in the segment at media time ``start_s`` (seconds since ``epoch``'s
        origin) lasting ``duration_s``; a late cue is moved to this segment's start."""
        seg_start = epoch.origin_s + start_s
        seg_end = seg_start + duration_s
        chosen: list[Cue] = []
        for index, cue in enumerate(self.cues):
            if cue.cue_id not in self.placed and cue.start_s < seg_start:
                # late: shown from this segment on, for its own display time
                cue = Cue(cue.cue_id, seg_start, seg_start + cue.end_s - cue.start_s, cue.texts)
                self.cues[index] = cue
            if cue.start_s < seg_end and cue.end_s > seg_start:
                chosen.append(cue)
                self.placed.add(cue.cue_id)
        self.cues = [c for c in self.cues if c.end_s > seg_end - KEEP_S]
        self.placed &= {c.cue_id for c in self.cues}
        return chosen

    def segment(self, epoch: Epoch, start_s: float, duration_s: float) -> dict[str, str]:
        """The WebVTT of each track for the segment at media time ``start_s`` lasting
        ``duration_s`` (:meth:`place`, then :func:`render_segment`)."""
        return render_segment(self.tracks, epoch, self.place(epoch, start_s, duration_s))


def render_segment(tracks: Sequence[str], epoch: Epoch, cues: Sequence[Cue]) -> dict[str, str]:
    """Track name -> the WebVTT document of one segment holding ``cues`` (times local to the
    epoch, whose time 0 is the PTS in ``X-TIMESTAMP-MAP``)."""
    header = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{epoch.mpegts},LOCAL:00:00:00.000\n"
    documents: dict[str, str] = {}
    for track in tracks:
        blocks = [header]
        for cue in sorted(cues, key=lambda c: c.start_s):
            text = cue.texts.get(track)
            if text is None:
                continue
            local_start = max(0.0, cue.start_s - epoch.origin_s)
            local_end = max(local_start + 0.001, cue.end_s - epoch.origin_s)
            blocks.append(
                f"{cue.cue_id}\n{timestamp(local_start)} --> {timestamp(local_end)}\n"
                f"{escape(text)}\n"
            )
        documents[track] = "\n".join(blocks)
    return documents


def timestamp(seconds: float) -> str:
    """WebVTT time ``HH:MM:SS.mmm``."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """SRT time ``HH:MM:SS,mmm``."""
    return timestamp(seconds).replace(".", ",")


def escape(text: str) -> str:
    """Cue text: no markup from recognised speech, no blank line (which would end the cue)."""
    one_line = " ".join(text.split())
    return one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def media_time_s(pts: int, epoch_mpegts: int) -> float:
    """Seconds from the epoch's first frame to a segment whose first PTS is ``pts`` (33-bit
    wrap-around included)."""
    return ((pts - epoch_mpegts) % (1 << 33)) / MPEGTS_HZ

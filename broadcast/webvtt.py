"""Final captions as WebVTT segments on the program's timeline. Pure.

Cues are kept on the worker's monotonic clock. Each encoder run (ffmpeg restarts reset PTS) is an
*epoch*: its origin (the monotonic time of its first frame) and the PTS of that frame. A WebVTT
segment of an epoch maps its LOCAL time 0 to that PTS (``X-TIMESTAMP-MAP``), and cue times are
monotonic times minus the epoch's origin: a restart rebases every later segment on the new
origin and PTS, while the earlier ones keep theirs.

A final caption arrives a second or more after its words were said: after the whole utterance
(often 5-15 s) plus the recognition's latency. Live, a caption shown only from its final would be
that late, so the live tracks are rolled up from interims (:class:`RollUp`): each time an
interim's words grow, a cue shows the utterance's words so far from the moment the new words
began (their place in the utterance's audio, by their share of its words); the final adds the
rest. The worker writes a caption segment a little after its media (``CAPTION_WAIT_S`` in
broadcast/worker.py), so that the interims of the words said in it have arrived by then. A cue that
still missed its segments goes into the next one written, its start moved to that segment's
start (late, but shown), never dropped. The recording shows the finals, each where its words
were said (broadcast/vod.py).
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

    def add(
        self,
        cue_id: str,
        start_s: float,
        end_s: float,
        texts: Mapping[str, str],
        *,
        stretch: bool = True,
    ) -> Cue | None:
        """A caption between monotonic ``start_s`` and ``end_s`` (``stretch``: the display time
        is stretched to MIN_CUE_S..MAX_CUE_S); the cue kept, or None (no text for any track)."""
        if stretch:
            end_s = min(max(end_s, start_s + MIN_CUE_S), start_s + MAX_CUE_S)
        kept = {track: text for track, text in texts.items() if track in self.tracks and text}
        if not kept or end_s <= start_s:
            return None
        cue = Cue(cue_id, start_s, end_s, kept)
        self.cues.append(cue)
        return cue

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


#: a rolled-up cue shows at most this many characters (about two lines), the latest words
ROLLUP_CHARS = 84
#: an interim adds a cue once this many words of it became stable
MIN_NEW_WORDS = 2
#: utterances followed at once (more: the oldest is forgotten; its final shows it whole)
MAX_OPEN = 32


@dataclass(slots=True)
class _Open:
    """An utterance being rolled up: monotonic times."""

    start_s: float
    #: where the last cue ended (the next one starts there)
    shown_to_s: float
    #: stable words of the original shown so far
    words: int
    pieces: int = 0


def words_of(text: str, chars: int | None = None) -> list[str]:
    """The whole words of ``text[:chars]`` (a word cut by ``chars`` is left out)."""
    if chars is None or chars >= len(text):
        return text.split()
    head = text[: max(0, chars)]
    words = head.split()
    if words and not text[chars].isspace() and not head[-1].isspace():
        words.pop()  # cut mid-word
    return words


def tail(words: Sequence[str], limit: int = ROLLUP_CHARS) -> str:
    """The last words that fit in ``limit`` characters (at least one)."""
    kept: list[str] = []
    size = 0
    for word in reversed(words):
        if kept and size + 1 + len(word) > limit:
            break
        kept.append(word)
        size += len(word) + (1 if size else 0)
    return " ".join(reversed(kept))


@dataclass(frozen=True, slots=True)
class CueSpec:
    cue_id: str
    start_s: float
    end_s: float
    texts: dict[str, str]
    #: the utterance's last cue (its final): stretched to MIN_CUE_S..MAX_CUE_S
    last: bool


@dataclass(slots=True)
class RollUp:
    """Live cues of the floor's captions as they are said (pure; see the module docstring).

    ``original`` names the track whose text is the caption's own; every other track's text is
    the caption's translation, of which a rolled-up cue shows the same share of words as of the
    original's words shown.

    ``stable_only``: a cue shows only an interim's stable words (they never change on screen).
    Off (the broadcast's choice), it shows the interim's every word, from where the previous
    cue stopped to the interim's end: a word shows about one interim sooner (LocalAgreement-2
    makes a word stable at the second interim that has it), which is what a player about 3 s
    behind the speaker can wait for; a word the recognizer revises is shown revised by the
    next cue (the text rolls up, as live television captions do)."""

    original: str
    stable_only: bool = False
    open: dict[str, _Open] = field(default_factory=dict)

    def interim(
        self,
        caption_id: str,
        start_s: float,
        end_s: float,
        texts: Mapping[str, str],
        stable_chars: int,
    ) -> list[CueSpec]:
        """An interim between monotonic ``start_s`` and ``end_s``: a cue when its words shown
        (see ``stable_only``) grew by MIN_NEW_WORDS, from the audio where the new ones begin
        to where they end."""
        text = texts.get(self.original, "")
        if not self.stable_only:
            stable_chars = len(text)
        every = words_of(text)
        stable = words_of(text, stable_chars)
        state = self.open.get(caption_id)
        if state is None:
            state = self.open[caption_id] = _Open(start_s, start_s, 0)
            while len(self.open) > MAX_OPEN:
                del self.open[next(iter(self.open))]
        if not every or len(stable) < state.words + MIN_NEW_WORDS:
            return []
        share = len(stable) / len(every)
        until = state.start_s + (end_s - state.start_s) * share
        if until <= state.shown_to_s:
            return []
        cue = CueSpec(
            f"{caption_id}-{state.pieces}",
            state.shown_to_s,
            until,
            self._texts(texts, stable, share),
            last=False,
        )
        state.shown_to_s, state.words = until, len(stable)
        state.pieces += 1
        return [cue]

    def final(
        self, caption_id: str, start_s: float, end_s: float, texts: Mapping[str, str]
    ) -> CueSpec:
        """The final: the utterance's last cue (all its words, the latest that fit) from where
        the rolled-up ones stopped (its start when there were none) to its end."""
        state = self.open.pop(caption_id, None)
        begin = start_s if state is None else min(state.shown_to_s, end_s)
        words = words_of(texts.get(self.original, ""))
        return CueSpec(caption_id, begin, end_s, self._texts(texts, words, 1.0), last=True)

    def whole(self, texts: Mapping[str, str]) -> dict[str, str]:
        """The texts of a final's cue (the latest words that fit)."""
        return self._texts(texts, words_of(texts.get(self.original, "")), 1.0)

    def _texts(
        self, texts: Mapping[str, str], stable: Sequence[str], share: float
    ) -> dict[str, str]:
        out: dict[str, str] = {}
        for track, text in texts.items():
            words = stable if track == self.original else words_of(text)
            if track != self.original and share < 1.0:
                words = words[: round(len(words) * share)]
            if words:
                out[track] = tail(words)
        return out


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

"""A room's transcript: its final captions in every language, with corrections, kept in memory
while the room lives (never written to disk, never logged), and its exports (JSON, WebVTT, SRT).
Pure: no I/O, no event loop."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: corrections a line keeps (the latest; each holds the text it replaced, up to 2000 chars):
#: what a line was corrected into is always its text; the history is for the record
MAX_CORRECTIONS_PER_LINE = 20


@dataclass(slots=True)
class Correction:
    """A language of a line that a person corrected."""

    lang: str
    by: str
    by_name: str
    #: seconds since the room started
    at_s: float
    #: what the machine (or the previous correction) had said
    previous: str


@dataclass(slots=True)
class TranscriptLine:
    """One final caption: its source text and translations, as corrected so far. Times are
    seconds since the room started (one clock for every speaker)."""

    caption_id: str
    speaker_id: str
    speaker_name: str
    lang: str
    text: str
    start_s: float
    end_s: float
    translations: dict[str, str] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    untranslated: dict[str, str] = field(default_factory=dict)
    #: the latest :data:`MAX_CORRECTIONS_PER_LINE` corrections, oldest first
    corrections: list[Correction] = field(default_factory=list)
    #: every language a person corrected (kept when its correction leaves ``corrections``)
    human_langs: set[str] = field(default_factory=set)
    #: seconds from the utterance's end to its final reaching the server
    latency_s: float | None = None

    def text_in(self, lang: str) -> str | None:
        """The line in ``lang`` (its source or a translation); None when it has none."""
        return self.text if lang == self.lang else self.translations.get(lang)

    @property
    def corrected_langs(self) -> list[str]:
        return sorted(self.human_langs | {c.lang for c in self.corrections})

    def to_wire(self) -> dict[str, Any]:
        return {
            "caption_id": self.caption_id,
            "participant_id": self.speaker_id,
            "name": self.speaker_name,
            "lang": self.lang,
            "text": self.text,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "translations": dict(self.translations),
            "engines": dict(self.engines),
            "untranslated": dict(self.untranslated),
            "corrections": [
                {
                    "lang": c.lang,
                    "by": c.by,
                    "by_name": c.by_name,
                    "at_s": round(c.at_s, 3),
                    "previous": c.previous,
                }
                for c in self.corrections
            ],
        }


class RoomTranscript:
    """The room's last ``max_lines`` finals, in arrival order, by caption id."""

    def __init__(self, room: str, *, max_lines: int, started_at_unix: float) -> None:
        self.room = room
        self.started_at_unix = started_at_unix
        self._max_lines = max_lines
        self._lines: collections.OrderedDict[str, TranscriptLine] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[TranscriptLine]:
        return iter(self._lines.values())

    def get(self, caption_id: str) -> TranscriptLine | None:
        return self._lines.get(caption_id)

    def add(self, line: TranscriptLine) -> None:
        self._lines[line.caption_id] = line
        while len(self._lines) > self._max_lines:
            self._lines.popitem(last=False)

    def correct(
        self, line: TranscriptLine, lang: str, text: str, *, by: str, by_name: str, at_s: float
    ) -> None:
        """Record a person's correction of ``lang`` (the source or a translation)."""
        previous = line.text_in(lang) or ""
        line.corrections.append(Correction(lang, by, by_name, at_s, previous))
        del line.corrections[:-MAX_CORRECTIONS_PER_LINE]
        line.human_langs.add(lang)
        if lang == line.lang:
            line.text = text
        else:
            line.translations[lang] = text
            line.engines[lang] = "human"
            line.untranslated.pop(lang, None)

    def languages(self) -> list[str]:
        langs: set[str] = set()
        for line in self:
            langs.add(line.lang)
            langs.update(line.translations)
        return sorted(langs)


# -- exports ---------------------------------------------------------------------------------
def export_json(transcript: RoomTranscript, speakers: Mapping[str, str] | None = None) -> str:
    """Every line in every language, with speakers, times and corrections."""
    names = dict(speakers or {})
    for line in transcript:
        names.setdefault(line.speaker_id, line.speaker_name)
    document = {
        "room": transcript.room,
        "started_at": transcript.started_at_unix,
        "languages": transcript.languages(),
        "speakers": [{"participant_id": k, "name": v} for k, v in names.items()],
        "lines": [line.to_wire() for line in transcript],
        "machine_generated": True,
    }
    return json.dumps(document, ensure_ascii=False, indent=1)


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


def _one_line(text: str) -> str:
    """Whitespace runs, every line break included (CR, LF, U+2028/2029, NEL, ...), as one
    space: a cue's text or speaker can never end the cue and start one of its own."""
    return " ".join(text.split())


def _cues(transcript: RoomTranscript, lang: str) -> Iterator[tuple[TranscriptLine, str, str]]:
    """(line, its text in ``lang``, its speaker's name), both on one line, in time order."""
    for line in sorted(transcript, key=lambda line: line.start_s):
        text = line.text_in(lang)
        if text:
            yield line, _one_line(text), _one_line(line.speaker_name)


def export_vtt(transcript: RoomTranscript, lang: str) -> str:
    """WebVTT of the lines in ``lang``; each cue names its speaker (``<v Name>``)."""
    out = ["WEBVTT", f"NOTE room {transcript.room}, language {lang}, machine-generated", ""]
    for line, text, speaker in _cues(transcript, lang):
        start = _timestamp(line.start_s, ".")
        end = _timestamp(max(line.end_s, line.start_s + 0.001), ".")
        # ">" escaped in the text and dropped from the name: no "-->" can end the cue early
        name = speaker.replace(">", "").replace("&", "&amp;").replace("<", "&lt;")
        body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out += [line.caption_id, f"{start} --> {end}", f"<v {name}>{body}", ""]
    return "\n".join(out)


def export_srt(transcript: RoomTranscript, lang: str) -> str:
    """SRT of the lines in ``lang``; each cue starts with its speaker's name."""
    out: list[str] = []
    for index, (line, text, speaker) in enumerate(_cues(transcript, lang), start=1):
        start = _timestamp(line.start_s, ",")
        end = _timestamp(max(line.end_s, line.start_s + 0.001), ",")
        out += [str(index), f"{start} --> {end}", f"{speaker}: {text}", ""]
    return "\n".join(out)

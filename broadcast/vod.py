"""The broadcast kept as a recording (``[retention]`` keeps ``broadcasts``): a VOD with the same
renditions and tracks as the live stream, then an MP4 and whole-broadcast WebVTT/SRT files.

Layout of ``<recording>/`` (the server lists and serves it to hosts)::

    hls/master.m3u8, hls/<rendition>/index.m3u8 + segments  the VOD (EVENT, then VOD, ENDLIST)
    hls/<track>/<segment>.vtt                                captions, as corrected
    cues.jsonl                                  the caption record (replayed after a restart)
    recording.mp4, captions.<lang|original>.vtt/.srt, info.json          written at the end

Media segments are hard links to ffmpeg's live ones (a copy across file systems), taken before
ffmpeg deletes them from the live window. The VOD's caption segments are Parley's own files, not
links, and hold the final captions rather than the live stream's rolled-up interims: a final
arrives after its words (their length plus the recognition's latency), and the VOD places it at
the time its words were said, writing again the segments it had already written
(:meth:`VodRecorder.add_cue`). A correction (a final caption
again, same id) rewrites every VOD segment that shows the cue, while the live segments already
published stay as they were (players cache them forever).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hls import SegmentEntry, SubtitleTrack, parse_media_playlist, subtitle_playlist
from .webvtt import Cue, Epoch, escape, render_segment, srt_timestamp, timestamp

log = logging.getLogger(__name__)

HLS_DIR = "hls"
CUES_FILE = "cues.jsonl"
INFO_FILE = "info.json"
MP4_FILE = "recording.mp4"
#: the MP4 remux of a long broadcast (copying, no encoding) gets this long
REMUX_TIMEOUT_S = 600.0
#: cues are matched to segments written this long after they ended, then forgotten
KEEP_CUES_S = 120.0


@dataclass(slots=True)
class CaptionSegment:
    """One caption segment of the VOD: where it is, its epoch, what it shows."""

    entry: SegmentEntry
    epoch: Epoch
    #: media time of the segment in its epoch
    start_s: float
    cues: list[Cue]


def caption_file_stem(track: SubtitleTrack) -> str:
    return f"captions.{track.language or 'original'}"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _link(source: Path, target: Path) -> bool:
    try:
        os.link(source, target)
    except FileExistsError:
        return True
    except FileNotFoundError:
        return False
    except OSError:  # another file system: copy
        try:
            shutil.copyfile(source, target)
        except OSError:
            return False
    return True


class VodRecorder:
    """Grows the recording as the live stream does; the worker calls it from its packager
    thread (under its lock), so it needs none of its own."""

    def __init__(
        self, *, directory: Path, live_dir: Path, tracks: Sequence[SubtitleTrack], room: str
    ) -> None:
        self.directory = directory
        self.hls = directory / HLS_DIR
        self.live_dir = live_dir
        self.tracks = tuple(tracks)
        self.room = room
        self.started_at = time.time()
        #: rendition name -> its VOD segments
        self.media: dict[str, list[SegmentEntry]] = {}
        self.captions: list[CaptionSegment] = []
        #: recent cues at the times their words were said (monotonic), for segments to come
        self.cues: list[Cue] = []
        self.missed = 0
        self._target_s = 1

    # -- growing ---------------------------------------------------------------------------------
    def adopt(self) -> None:
        """A restarted worker continues the recording of the same broadcast."""
        info = self._read_info()
        if info is not None:
            self.started_at = float(info.get("started_at", self.started_at))
        if self.hls.is_dir():
            for folder in self.hls.iterdir():
                playlist = folder / "index.m3u8"
                if folder.name.startswith("s_") or not playlist.exists():
                    continue
                parsed = parse_media_playlist(playlist.read_text())
                self.media[folder.name] = list(parsed.segments)
                self._target_s = max(self._target_s, parsed.target_duration_s)
        with contextlib.suppress(OSError):
            for line in (self.directory / CUES_FILE).read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self._replay(json.loads(line))

    def collect_media(self, renditions: Sequence[str]) -> bool:
        """Link each rendition's new live segments into the VOD; True if any was added."""
        added = False
        for name in renditions:
            try:
                live = parse_media_playlist((self.live_dir / name / "index.m3u8").read_text())
            except (OSError, ValueError):
                continue
            kept = self.media.setdefault(name, [])
            last = kept[-1].sequence if kept else -1
            folder = self.hls / name
            for segment in live.segments:
                if segment.sequence <= last:
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                if _link(self.live_dir / name / segment.uri, folder / segment.uri):
                    kept.append(segment)
                    self._target_s = max(self._target_s, live.target_duration_s)
                    added = True
                else:
                    self.missed += 1
                    log.warning("recording missed a segment: %s/%s", name, segment.uri)
        return added

    def add_cue(self, cue: Cue) -> None:
        """A new final at the time its words were said: into the segments to come, and into
        those already written that it overlaps (written again)."""
        self.cues.append(cue)
        changed = [r for r in self.captions if _overlaps(r, cue)]
        for record in changed:
            record.cues.append(cue)
            self._write_captions(record)
        self._append_cues({"cue": [cue.cue_id, cue.start_s, cue.end_s, dict(cue.texts)]})

    def add_captions(self, entry: SegmentEntry, epoch: Epoch, start_s: float) -> None:
        """The caption segment the live stream just got (same sequence, URI, epoch), with the
        cues said during it."""
        end = epoch.origin_s + start_s + entry.duration_s
        self.cues = [c for c in self.cues if c.end_s > end - KEEP_CUES_S]
        record = CaptionSegment(entry, epoch, start_s, [])
        record.cues = [c for c in self.cues if _overlaps(record, c)]
        cues = record.cues
        self.captions.append(record)
        self._write_captions(record)
        self._append_cues(
            {
                "segment": {
                    "sequence": entry.sequence,
                    "uri": entry.uri,
                    "duration_s": entry.duration_s,
                    "program_date_time": entry.program_date_time,
                    "discontinuity": entry.discontinuity,
                },
                "epoch": [epoch.origin_s, epoch.mpegts],
                "start_s": start_s,
                "cues": [[c.cue_id, c.start_s, c.end_s, dict(c.texts)] for c in cues],
            }
        )

    def correct(self, cue_id: str, texts: Mapping[str, str]) -> int:
        """A corrected caption: every VOD segment showing it is written again; returns how
        many."""
        kept = {t: text for t, text in texts.items() if text}
        changed = self._apply_correction(cue_id, kept)
        for record in changed:
            self._write_captions(record)
        if changed:
            self._append_cues({"correct": cue_id, "texts": kept})
        return len(changed)

    def write_playlists(self, master: str | None, *, ended: bool) -> None:
        """The VOD's playlists (EVENT while live; VOD + ENDLIST once ended) and master."""
        kind = "VOD" if ended else "EVENT"
        self.hls.mkdir(parents=True, exist_ok=True)
        if master is not None:
            _write(self.hls / "master.m3u8", master)
        for name, segments in self.media.items():
            if segments:
                _write(
                    self.hls / name / "index.m3u8",
                    subtitle_playlist(
                        segments, target_duration_s=self._target_s, ended=ended, playlist_type=kind
                    ),
                )
        entries = [r.entry for r in self.captions]
        for track in self.tracks:
            folder = self.hls / track.name
            folder.mkdir(parents=True, exist_ok=True)
            _write(
                folder / "index.m3u8",
                subtitle_playlist(
                    entries, target_duration_s=self._target_s, ended=ended, playlist_type=kind
                ),
            )

    # -- the end ---------------------------------------------------------------------------------
    def finish(self, *, ffmpeg: str, video: str, audio: Sequence[str]) -> None:
        """Whole-broadcast WebVTT/SRT per track, the MP4 (``video`` and every audio rendition,
        copied), info.json."""
        files: list[str] = []
        for track in self.tracks:
            stem = caption_file_stem(track)
            cues = self.timeline(track.name)
            _write(self.directory / f"{stem}.vtt", whole_vtt(cues))
            _write(self.directory / f"{stem}.srt", whole_srt(cues))
            files += [f"{stem}.vtt", f"{stem}.srt"]
        if self._remux(ffmpeg, video, [a for a in audio if self.media.get(a)]):
            files.insert(0, MP4_FILE)
        duration_s = sum(s.duration_s for s in self.media.get(video, []))
        info = {
            "room": self.room,
            "started_at": self.started_at,
            "ended_at": time.time(),
            "duration_s": round(duration_s, 3),
            "audio": [a for a in audio if self.media.get(a)],
            "captions": [t.language or "original" for t in self.tracks],
            "files": files,
            "missed_segments": self.missed,
        }
        _write(self.directory / INFO_FILE, json.dumps(info, indent=1) + "\n")

    def timeline(self, track: str) -> list[tuple[float, float, str, str]]:
        """(start_s, end_s, cue_id, text) of each cue on the VOD's timeline (seconds from its
        first segment), for one track: a cue is placed where it first shows."""
        out: list[tuple[float, float, str, str]] = []
        seen: set[str] = set()
        at_s = 0.0
        for record in self.captions:
            segment_start = record.epoch.origin_s + record.start_s
            for cue in sorted(record.cues, key=lambda c: c.start_s):
                text = cue.texts.get(track)
                if cue.cue_id in seen or text is None:
                    continue
                seen.add(cue.cue_id)
                start = max(0.0, at_s + cue.start_s - segment_start)
                out.append((start, start + cue.end_s - cue.start_s, cue.cue_id, text))
            at_s += record.entry.duration_s
        return sorted(out)

    # -- inside ----------------------------------------------------------------------------------
    def _apply_correction(self, cue_id: str, texts: Mapping[str, str]) -> list[CaptionSegment]:
        self.cues = [
            Cue(c.cue_id, c.start_s, c.end_s, dict(texts)) if c.cue_id == cue_id else c
            for c in self.cues
        ]
        changed: list[CaptionSegment] = []
        for record in self.captions:
            for index, cue in enumerate(record.cues):
                if cue.cue_id == cue_id:
                    record.cues[index] = Cue(cue_id, cue.start_s, cue.end_s, dict(texts))
                    changed.append(record)
        return changed

    def _write_captions(self, record: CaptionSegment) -> None:
        documents = render_segment([t.name for t in self.tracks], record.epoch, record.cues)
        for track, document in documents.items():
            folder = self.hls / track
            folder.mkdir(parents=True, exist_ok=True)
            _write(folder / record.entry.uri, document)

    def _append_cues(self, line: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / CUES_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _replay(self, line: dict[str, Any]) -> None:
        if "correct" in line:
            self._apply_correction(str(line["correct"]), dict(line["texts"]))
            return
        if "cue" in line:
            i, a, b, t = line["cue"]
            cue = Cue(str(i), float(a), float(b), dict(t))
            self.cues.append(cue)
            for record in self.captions:
                if _overlaps(record, cue) and all(c.cue_id != cue.cue_id for c in record.cues):
                    record.cues.append(cue)
            return
        s = line["segment"]
        entry = SegmentEntry(
            int(s["sequence"]),
            str(s["uri"]),
            float(s["duration_s"]),
            s.get("program_date_time"),
            bool(s.get("discontinuity")),
        )
        origin_s, mpegts = line["epoch"]
        cues = [Cue(str(i), float(a), float(b), dict(t)) for i, a, b, t in line["cues"]]
        self.captions.append(
            CaptionSegment(entry, Epoch(float(origin_s), int(mpegts)), float(line["start_s"]), cues)
        )

    def _read_info(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / INFO_FILE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _remux(self, ffmpeg: str, video: str, audio: Sequence[str]) -> bool:
        """recording.mp4: the first video rendition and every audio rendition, copied from the
        VOD (one input per playlist, timestamps kept: they share ffmpeg's clock)."""
        if not self.media.get(video):
            return False
        inputs = [video, *audio]
        cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-copyts"]
        for name in inputs:
            cmd += ["-i", str(self.hls / name / "index.m3u8")]
        cmd += ["-map", "0:v:0"]
        for index, name in enumerate(audio):
            cmd += ["-map", f"{index + 1}:a:0"]
            language = name[2:] if name != "a_floor" else "und"
            cmd += [f"-metadata:s:a:{index}", f"title={name[2:]}"]
            cmd += [f"-metadata:s:a:{index}", f"language={language}"]
        target = self.directory / MP4_FILE
        tmp = target.with_name("recording.tmp.mp4")
        cmd += ["-c", "copy", "-movflags", "+faststart", str(tmp)]
        try:
            done = subprocess.run(
                cmd, capture_output=True, timeout=REMUX_TIMEOUT_S, check=False, text=True
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("recording: no MP4 (%s)", type(exc).__name__)
            return False
        if done.returncode != 0:
            log.error("recording: no MP4 (ffmpeg: %s)", done.stderr.strip()[-400:])
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        os.replace(tmp, target)
        return True


def _overlaps(record: CaptionSegment, cue: Cue) -> bool:
    start = record.epoch.origin_s + record.start_s
    return cue.start_s < start + record.entry.duration_s and cue.end_s > start


def whole_vtt(cues: Sequence[tuple[float, float, str, str]]) -> str:
    blocks = ["WEBVTT\n"]
    for start, end, cue_id, text in cues:
        blocks.append(f"{cue_id}\n{timestamp(start)} --> {timestamp(end)}\n{escape(text)}\n")
    return "\n".join(blocks)


def whole_srt(cues: Sequence[tuple[float, float, str, str]]) -> str:
    blocks = []
    for number, (start, end, _, text) in enumerate(cues, 1):
        blocks.append(
            f"{number}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{' '.join(text.split())}\n"
        )
    return "\n".join(blocks)

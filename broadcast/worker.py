"""The broadcast worker process: the room session (event loop), the program clock (a thread
writing the composed picture and the audio renditions to ffmpeg in real time) and the caption
packager (WebVTT segments and playlists beside ffmpeg's). Ends with EXT-X-ENDLIST everywhere.

Restarts: ffmpeg is started again (appending to its playlists behind a discontinuity) when it
dies, or when a channel appears that has no audio rendition yet (a new interpreter went on air):
a new epoch for the captions, a new master playlist (the watch page reloads it when it changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .encoder import Encoder, EncoderConfig, rendition_names, write_atomically
from .hls import (
    AudioRendition,
    SegmentEntry,
    SubtitleTrack,
    VideoRendition,
    first_video_pts,
    master_playlist,
    parse_media_playlist,
    subtitle_playlist,
)
from .mixing import CHUNK_SAMPLES, AudioMixer, VideoSources
from .program import FLOOR, ActiveSpeaker, audio_plan, floor_members, video_source
from .session import RoomCaption, RoomSession, announce_only
from .vod import VodRecorder
from .webvtt import (
    MAX_CUE_S,
    MIN_CUE_S,
    Cue,
    Epoch,
    RollUp,
    VttPackager,
    media_time_s,
    render_segment,
)

log = logging.getLogger(__name__)

LANGUAGE_NAMES = {
    "en": "English", "fr": "Français", "es": "Español", "de": "Deutsch", "it": "Italiano",
    "pt": "Português", "nl": "Nederlands", "pl": "Polski", "ru": "Русский", "uk": "Українська",
    "ar": "العربية", "zh": "中文", "ja": "日本語", "ko": "한국어", "sv": "Svenska", "da": "Dansk",
    "fi": "Suomi", "el": "Ελληνικά", "cs": "Čeština", "ro": "Română", "hu": "Magyar",
    "tr": "Türkçe", "hi": "हिन्दी", "ca": "Català",
}  # fmt: skip
PACKAGER_INTERVAL_S = 0.25
ORIGINAL_TRACK = "s_orig"
#: a live caption segment is written this long after its media ended (on the program's clock),
#: so that the interims of the words said in it have arrived (the first about 0.8 s of speech
#: plus a decode after the words began, then one a second); the watch page plays 2.5 s behind
#: the newest segment's end and polls its playlists every second, so it still fetches the
#: segment in time
CAPTION_WAIT_S = 1.75
#: captions waiting for the packager (drop-oldest: at 4 passes a second it never fills)
INCOMING_MAX = 1000


@dataclass(frozen=True, slots=True)
class BroadcastJob:
    """What the server asks of one worker (a JSON file; the secret comes by environment)."""

    url: str
    room: str
    out_dir: Path
    work_dir: Path
    fps: int
    segment_s: float
    list_size: int
    audio_kbps: int
    video: tuple[VideoRendition, ...]
    channels: tuple[str, ...]
    caption_languages: tuple[str, ...]
    ffmpeg: str = "ffmpeg"
    #: in every segment's name: a later broadcast of the room never reuses a (cached) name
    segment_prefix: str = "seg"
    #: the server's [media] ice_host_addresses (empty: every non-loopback address)
    ice_host_addresses: tuple[str, ...] = ()
    #: where the broadcast is kept as a recording (broadcast.vod); None: not kept
    vod_dir: Path | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BroadcastJob:
        return cls(
            url=str(data["url"]),
            room=str(data["room"]),
            out_dir=Path(data["out_dir"]),
            work_dir=Path(data["work_dir"]),
            fps=int(data["fps"]),
            segment_s=float(data["segment_s"]),
            list_size=int(data["list_size"]),
            audio_kbps=int(data["audio_kbps"]),
            video=tuple(VideoRendition(**v) for v in data["video"]),
            channels=tuple(data["channels"]),
            caption_languages=tuple(data["caption_languages"]),
            ffmpeg=str(data.get("ffmpeg", "ffmpeg")),
            segment_prefix=str(data.get("segment_prefix", "seg")),
            ice_host_addresses=tuple(data.get("ice_host_addresses", ())),
            vod_dir=Path(data["vod_dir"]) if data.get("vod_dir") else None,
        )


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def audio_renditions(channels: list[str]) -> tuple[AudioRendition, ...]:
    floor = AudioRendition("a_floor", "Floor (original)", None, None)
    return (
        floor,
        *(AudioRendition(f"a_{c}", f"{language_name(c)} (interpreter)", c, c) for c in channels),
    )


def subtitle_tracks(languages: tuple[str, ...]) -> tuple[SubtitleTrack, ...]:
    original = SubtitleTrack(ORIGINAL_TRACK, "Original language (machine-generated)", None)
    return (
        original,
        *(SubtitleTrack(f"s_{lang}", f"{language_name(lang)} (machine-generated)", lang)
          for lang in languages),
    )  # fmt: skip


def cue_texts(caption: RoomCaption, languages: tuple[str, ...]) -> dict[str, str]:
    """Track name -> the caption's text for it: the original, and each language from the
    spoken text or its machine translation (none when untranslated)."""
    texts = {ORIGINAL_TRACK: caption.text}
    for lang in languages:
        text = caption.text if caption.lang == lang else caption.translations.get(lang)
        if text:
            texts[f"s_{lang}"] = text
    return texts


class ProgramClock(threading.Thread):
    """Writes the program in real time: a picture every 1/fps s, 20 ms of each audio rendition
    every 20 ms, deciding what they show and play from the room view as it goes."""

    def __init__(
        self, worker: BroadcastWorker, encoder: Encoder, channels: tuple[str, ...]
    ) -> None:
        super().__init__(name="program-clock", daemon=True)
        self.worker, self.encoder, self.channels = worker, encoder, channels
        self.stopping = threading.Event()
        self.origin_s: float | None = None
        self._shown: str | None = None

    def run(self) -> None:
        worker, fps = self.worker, self.worker.job.fps
        chunk_s = CHUNK_SAMPLES / 48_000
        frames = chunks = 0
        origin = self.origin_s = time.monotonic()
        picture = b""
        while not self.stopping.is_set():
            now = time.monotonic()
            view = worker.session.view if worker.session is not None else None
            on_air = dict(view.on_air) if view is not None else {}
            names = dict(view.names) if view is not None else {}
            floor = floor_members(names, on_air)
            while chunks <= (now - origin) / chunk_s:
                pcm, levels = worker.mixer.tick(audio_plan(self.channels, on_air), floor)
                for key, data in pcm.items():
                    self.encoder.put_audio("a_floor" if key == FLOOR else f"a_{key}", data)
                worker.speaker.update(levels, floor, now)
                chunks += 1
            while frames <= (now - origin) * fps:
                chosen = video_source(
                    pinned=view.pinned if view is not None else None,
                    screens=worker.video.live("screen", now) & set(names),
                    cameras=worker.video.live("camera", now) & set(names),
                    active=worker.speaker.current,
                )
                self._label(None if chosen is None else names.get(chosen[0], ""))
                picture = worker.video.picture(chosen)
                self.encoder.put_video(picture)
                frames += 1
            next_s = min(origin + chunks * chunk_s, origin + frames / fps)
            self.stopping.wait(max(0.0, next_s - time.monotonic()))

    def _label(self, name: str | None) -> None:
        """The speaker's name under the picture (ffmpeg's drawtext re-reads the file)."""
        if name != self._shown:
            self._shown = name
            write_atomically(self.worker.encoder_config([]).name_file, name or " ")


class BroadcastWorker:
    def __init__(self, job: BroadcastJob, secret: str) -> None:
        self.job, self._secret = job, secret
        self.mixer = AudioMixer()
        self.speaker = ActiveSpeaker()
        width, height = max(((v.width, v.height) for v in job.video), key=lambda s: s[0] * s[1])
        self.video = VideoSources(width, height)
        self.session: RoomSession | None = None
        self.tracks = subtitle_tracks(job.caption_languages)
        self.packager = VttPackager(tracks=tuple(t.name for t in self.tracks))
        self.stop_requested = asyncio.Event()
        self._changed = asyncio.Event()
        self._channels: tuple[str, ...] = ()
        self._epoch: Epoch | None = None
        #: the last sequence number of the video playlist handled
        self._last_seq = -1
        self._package_lock = threading.Lock()
        self._clock: ProgramClock | None = None
        self._subs: list[SegmentEntry] = []
        self._target_s = 1
        #: finals and corrections from the event loop, taken by the packager thread
        self._incoming: deque[RoomCaption] = deque(maxlen=INCOMING_MAX)
        self.rollup = RollUp(original=ORIGINAL_TRACK)
        self._master: str | None = None
        self.vod: VodRecorder | None = None
        if job.vod_dir is not None:
            self.vod = VodRecorder(
                directory=job.vod_dir, live_dir=job.out_dir, tracks=self.tracks, room=job.room
            )

    def encoder_config(self, channels: list[str]) -> EncoderConfig:
        job = self.job
        return EncoderConfig(
            out_dir=job.out_dir,
            work_dir=job.work_dir,
            video=job.video,
            audio=audio_renditions(channels),
            fps=job.fps,
            segment_s=job.segment_s,
            audio_kbps=job.audio_kbps,
            list_size=job.list_size,
            ffmpeg=job.ffmpeg,
            segment_prefix=job.segment_prefix,
        )

    def _on_caption(self, caption: RoomCaption) -> None:
        self._incoming.append(caption)  # deque: safe across threads; the packager takes it

    def _take_captions(self) -> None:
        """New finals become cues; a correction replaces the texts of its cue, in the cues
        still to be placed and in the recording's segments (the live ones stay)."""
        while self._incoming:
            caption = self._incoming.popleft()
            texts = cue_texts(caption, self.job.caption_languages)
            if caption.corrected:
                self.packager.correct(caption.caption_id, self.rollup.whole(texts))
                if self.vod is not None:
                    self.vod.correct(caption.caption_id, texts)
                continue
            # the words reached the server at end_mono_s; the program plays them after the
            # mixer's buffer (its jitter margin), so the cues go there too
            end = caption.end_mono_s + self.mixer.delay_s(caption.participant_id)
            start = end - caption.duration_s
            if not caption.final:
                specs = self.rollup.interim(
                    caption.caption_id, start, end, texts, caption.stable_chars
                )
            else:
                specs = [self.rollup.final(caption.caption_id, start, end, texts)]
                if self.vod is not None:
                    # the recording shows the final whole, where it was said
                    kept = {t: x for t, x in texts.items() if x and t in self.packager.tracks}
                    stop = min(max(end, start + MIN_CUE_S), start + MAX_CUE_S)
                    if kept:
                        self.vod.add_cue(Cue(caption.caption_id, start, stop, kept))
            for spec in specs:
                self.packager.add(
                    spec.cue_id, spec.start_s, spec.end_s, spec.texts, stretch=spec.last
                )

    def _wanted_channels(self) -> tuple[str, ...]:
        known = list(self.job.channels)
        if self.session is not None:
            known += [c for c in self.session.view.channels if c not in known]
        return tuple(dict.fromkeys(known))

    async def run(self) -> int:
        job = self.job
        job.out_dir.mkdir(parents=True, exist_ok=True)
        announce_only(list(job.ice_host_addresses))
        session = self.session = RoomSession(
            url=job.url,
            room=job.room,
            secret=self._secret,
            caption_languages=list(job.caption_languages),
            mixer=self.mixer,
            video=self.video,
            on_caption=self._on_caption,
            on_change=self._changed.set,
        )
        session_task = asyncio.create_task(session.run(), name="room-session")
        joined = asyncio.create_task(session.joined.wait(), name="joined")
        await asyncio.wait({session_task, joined}, timeout=20, return_when="FIRST_COMPLETED")
        if not session.joined.is_set():
            joined.cancel()
            log.error("could not join room: %s", session.ended_reason)
            await session.aclose()
            with contextlib.suppress(BaseException):
                await session_task
            return 1
        await asyncio.sleep(0.3)  # the channels message follows joined
        resume = self._adopt_earlier_run()
        if self.vod is not None:
            await asyncio.to_thread(self.vod.adopt)
            recorded = self.vod.captions[-1].entry.sequence if self.vod.captions else -1
            for entry in self._subs:  # the earlier run's uncaptioned segments, empty
                if entry.sequence > recorded:
                    self.vod.add_captions(entry, Epoch(0.0, 0), 0.0)
        encoder = self._start_run(resume=resume)
        packager = asyncio.create_task(self._package_forever(), name="caption-packager")
        stop = asyncio.create_task(self.stop_requested.wait(), name="stop-requested")
        try:
            while True:
                changed = asyncio.create_task(self._changed.wait(), name="changed")
                await asyncio.wait(
                    {session_task, stop, changed}, timeout=1.0, return_when="FIRST_COMPLETED"
                )
                changed.cancel()
                self._changed.clear()
                if session_task.done() or stop.done():
                    break
                grown = self._wanted_channels() != self._channels
                if grown or not encoder.alive:
                    log.info("restarting the encoder (%s)", "new channel" if grown else "exited")
                    await asyncio.to_thread(self._end_run, encoder)
                    encoder = self._start_run(resume=True)
        finally:
            stop.cancel()
            await asyncio.to_thread(self._end_run, encoder)
            packager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await packager
            await asyncio.to_thread(self._finish)
            await session.aclose()
            with contextlib.suppress(BaseException):
                await session_task
        log.info("broadcast ended: %s", session.ended_reason or "stopped")
        return 0

    # -- encoder runs ----------------------------------------------------------------------------
    def _start_run(self, *, resume: bool) -> Encoder:
        self._channels = self._wanted_channels()
        config = self.encoder_config(list(self._channels))
        self._master = master_playlist(
            config.video, config.audio, self.tracks, audio_kbps=config.audio_kbps
        )
        write_atomically(self.job.out_dir / "master.m3u8", self._master)
        encoder = Encoder(config, resume=resume)
        encoder.start()
        self._epoch = None
        self._clock = ProgramClock(self, encoder, self._channels)
        self._clock.start()
        return encoder

    def _end_run(self, encoder: Encoder) -> None:
        if self._clock is not None:
            self._clock.stopping.set()
            self._clock.join(timeout=2.0)
        encoder.stop()
        self._package_once(flush=True)

    def _finish(self) -> None:
        """EXT-X-ENDLIST on every playlist: the broadcast is over."""
        names = self._media_names()
        for name in names:
            path = self.job.out_dir / name / "index.m3u8"
            if path.exists():
                text = path.read_text()
                if "#EXT-X-ENDLIST" not in text:
                    write_atomically(path, text.rstrip("\n") + "\n#EXT-X-ENDLIST\n")
        self._write_subtitle_playlists(ended=True)
        if self.vod is not None:
            with self._package_lock:
                self.vod.write_playlists(self._master, ended=True)
                audio = rendition_names(audio_renditions(list(self._channels)))
                self.vod.finish(ffmpeg=self.job.ffmpeg, video=self.job.video[0].name, audio=audio)

    def _media_names(self) -> list[str]:
        names = rendition_names(self.job.video)
        return names + rendition_names(audio_renditions(list(self._channels)))

    # -- captions --------------------------------------------------------------------------------
    async def _package_forever(self) -> None:
        while True:
            await asyncio.to_thread(self._package_once)
            await asyncio.sleep(PACKAGER_INTERVAL_S)

    def _adopt_earlier_run(self) -> bool:
        """A worker restarted for the same broadcast: continue its playlists (True)."""
        try:
            video = parse_media_playlist(
                (self.job.out_dir / self.job.video[0].name / "index.m3u8").read_text()
            )
        except OSError:
            return False
        if video.segments:
            self._last_seq = video.segments[-1].sequence
        with contextlib.suppress(OSError):
            subs = (self.job.out_dir / ORIGINAL_TRACK / "index.m3u8").read_text()
            self._subs = list(parse_media_playlist(subs).segments)
        # the segments the earlier run had not captioned yet (CAPTION_WAIT_S): empty caption
        # segments, so that the subtitle playlists keep the video's numbering
        done = self._subs[-1].sequence if self._subs else -1
        for segment in video.segments:
            if segment.sequence <= done:
                continue
            uri = f"{self.job.segment_prefix}_{segment.sequence:05d}.vtt"
            for track in self.tracks:
                folder = self.job.out_dir / track.name
                folder.mkdir(parents=True, exist_ok=True)
                write_atomically(folder / uri, "WEBVTT\n")
            self._subs.append(
                SegmentEntry(
                    segment.sequence,
                    uri,
                    segment.duration_s,
                    segment.program_date_time,
                    segment.discontinuity,
                )
            )
        return True

    def _package_once(self, *, flush: bool = False) -> None:
        with self._package_lock:
            self._package_locked(flush=flush)

    def _package_locked(self, *, flush: bool) -> None:
        """WebVTT for each video segment not handled yet whose media ended CAPTION_WAIT_S ago
        (every one when ``flush``: the run ended), then the subtitle playlists (and the
        recording's new segments and playlists)."""
        self._take_captions()
        video_dir = self.job.out_dir / self.job.video[0].name
        try:
            playlist = parse_media_playlist((video_dir / "index.m3u8").read_text())
        except (OSError, ValueError):
            return
        self._target_s = playlist.target_duration_s
        wrote = False
        for segment in playlist.segments:
            if segment.sequence <= self._last_seq:
                continue
            try:
                pts = first_video_pts((video_dir / segment.uri).read_bytes())
            except OSError:
                pts = None
            if pts is None:
                break  # not readable yet: next pass
            origin = self._clock.origin_s if self._clock is not None else None
            if self._epoch is None:
                if origin is None:
                    break
                # the first segment of this run: its first frame is the run's media time 0
                self._epoch = Epoch(origin_s=origin, mpegts=pts)
            start = media_time_s(pts, self._epoch.mpegts)
            ends_at = self._epoch.origin_s + start + segment.duration_s
            if not flush and time.monotonic() < ends_at + CAPTION_WAIT_S:
                break  # its words may not be stable yet: a later pass
            cues = self.packager.place(self._epoch, start, segment.duration_s)
            documents = render_segment(self.packager.tracks, self._epoch, cues)
            uri = f"{self.job.segment_prefix}_{segment.sequence:05d}.vtt"
            for track, document in documents.items():
                folder = self.job.out_dir / track
                folder.mkdir(parents=True, exist_ok=True)
                write_atomically(folder / uri, document)
            entry = SegmentEntry(
                segment.sequence,
                uri,
                segment.duration_s,
                segment.program_date_time,
                segment.discontinuity,
            )
            self._subs.append(entry)
            if self.vod is not None:
                self.vod.add_captions(entry, self._epoch, start)
            self._last_seq = segment.sequence
            wrote = True
        if wrote:
            self._write_subtitle_playlists(ended=False)
        if self.vod is not None and (self.vod.collect_media(self._media_names()) or wrote):
            self.vod.write_playlists(self._master, ended=False)

    def _write_subtitle_playlists(self, *, ended: bool) -> None:
        keep = self._subs[-self.job.list_size :]
        for gone in self._subs[: -self.job.list_size]:
            for track in self.tracks:
                with contextlib.suppress(OSError):
                    (self.job.out_dir / track.name / gone.uri).unlink()
        self._subs = keep
        text = subtitle_playlist(keep, target_duration_s=self._target_s, ended=ended)
        for track in self.tracks:
            folder = self.job.out_dir / track.name
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / "index.m3u8", text)


def load_job(path: Path) -> BroadcastJob:
    return BroadcastJob.from_json(json.loads(path.read_text()))

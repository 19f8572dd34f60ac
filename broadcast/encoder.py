"""The encoder: Debian's ffmpeg as a child process, fed raw frames through named pipes.

ffmpeg, not PyAV in this process: x264 and AAC then run on their own cores, never holding this
process's GIL (the worker's event loop still has to drain WebRTC tracks and answer offers in
time), and ffmpeg's HLS muxer writes the renditions' playlists and segments (``var_stream_map``).
Video arrives as raw yuv420p at a constant frame rate, each audio rendition as s16le mono 48 kHz;
the program clock (:mod:`broadcast.worker`) writes all of them in real time, so ffmpeg's
timestamps (frame and sample counts) stay on one timeline.

Each input has a writer thread and a bounded queue (live media: drop the oldest): a pipe that
ffmpeg reads late must not stall the others (ffmpeg reads each input in its own thread).
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .hls import AudioRendition, VideoRendition

AUDIO_RATE = 48_000
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)
#: frames / 20 ms audio chunks queued per input before the oldest is dropped (about 2 s)
VIDEO_QUEUE_FRAMES = 50
AUDIO_QUEUE_CHUNKS = 100


@dataclass(frozen=True, slots=True)
class EncoderConfig:
    out_dir: Path
    #: the named pipes and the speaker-name file (not served)
    work_dir: Path
    video: tuple[VideoRendition, ...]
    audio: tuple[AudioRendition, ...]
    fps: int
    segment_s: float
    audio_kbps: int
    list_size: int
    ffmpeg: str = "ffmpeg"
    segment_prefix: str = "seg"

    @property
    def program_size(self) -> tuple[int, int]:
        """The composed picture: the largest rendition's size."""
        first = max(self.video, key=lambda v: v.width * v.height)
        return first.width, first.height

    @property
    def name_file(self) -> Path:
        return self.work_dir / "speaker.txt"

    def video_pipe(self) -> Path:
        return self.work_dir / "video.yuv"

    def audio_pipe(self, rendition: AudioRendition) -> Path:
        return self.work_dir / f"{rendition.name}.pcm"


def font_file() -> str | None:
    return next((f for f in FONT_CANDIDATES if Path(f).exists()), None)


def ffmpeg_command(config: EncoderConfig, *, resume: bool, font: str | None) -> list[str]:
    """The ffmpeg command line for one run; ``resume``: append to the playlists of an earlier
    run (after a restart) behind an EXT-X-DISCONTINUITY."""
    width, height = config.program_size
    gop = max(1, round(config.fps * config.segment_s))
    cmd = [config.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}"]
    cmd += ["-framerate", str(config.fps), "-thread_queue_size", "64"]
    cmd += ["-i", str(config.video_pipe())]
    for rendition in config.audio:
        cmd += ["-f", "s16le", "-ar", str(AUDIO_RATE), "-ac", "1", "-thread_queue_size", "256"]
        cmd += ["-i", str(config.audio_pipe(rendition))]
    chain = "[0:v]"
    if font is not None:
        text = str(config.name_file).replace("\\", "\\\\").replace(":", "\\:").replace("'", "")
        size = max(12, height // 18)
        chain += (
            f"drawtext=fontfile={font}:textfile={text}:reload=1:x={size}:y=h-th-{size}:"
            f"fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw={size // 3},"
        )
    n = len(config.video)
    chain += f"split={n}" + "".join(f"[s{i}]" for i in range(n))
    for i, variant in enumerate(config.video):
        chain += f";[s{i}]scale={variant.width}:{variant.height}[v{i}]"
    cmd += ["-filter_complex", chain]
    for i in range(n):
        cmd += ["-map", f"[v{i}]"]
    for i in range(len(config.audio)):
        cmd += ["-map", f"{i + 1}:a"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"]
    cmd += ["-profile:v", "baseline", "-pix_fmt", "yuv420p"]
    cmd += ["-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0"]
    for i, variant in enumerate(config.video):
        kbps = variant.video_kbps
        cmd += [f"-b:v:{i}", f"{kbps}k", f"-maxrate:v:{i}", f"{kbps}k"]
        cmd += [f"-bufsize:v:{i}", f"{kbps * 2}k"]
    cmd += ["-c:a", "aac", "-b:a", f"{config.audio_kbps}k", "-ac", "1", "-ar", str(AUDIO_RATE)]
    flags = "independent_segments+program_date_time+delete_segments+omit_endlist+temp_file"
    if resume:
        flags += "+append_list+discont_start"
    cmd += ["-f", "hls", "-hls_time", f"{config.segment_s:g}"]
    cmd += ["-hls_list_size", str(config.list_size), "-hls_delete_threshold", "2"]
    cmd += ["-hls_flags", flags, "-hls_segment_type", "mpegts"]
    streams = [f"v:{i},agroup:aud,name:{v.name}" for i, v in enumerate(config.video)]
    streams += [f"a:{i},agroup:aud,name:{a.name}" for i, a in enumerate(config.audio)]
    cmd += ["-var_stream_map", " ".join(streams)]
    cmd += [
        "-hls_segment_filename",
        str(config.out_dir / "%v" / f"{config.segment_prefix}_%05d.ts"),
    ]
    cmd.append(str(config.out_dir / "%v" / "index.m3u8"))
    return cmd


class _PipeWriter(threading.Thread):
    """Writes one input's chunks into its named pipe (opening it blocks until ffmpeg does)."""

    def __init__(self, path: Path, max_chunks: int) -> None:
        super().__init__(name=f"pipe-{path.name}", daemon=True)
        self.path = path
        self.chunks: queue.Queue[bytes | None] = queue.Queue(max_chunks)
        self.dropped = 0
        self.failed = False

    def put(self, chunk: bytes) -> None:
        while True:
            try:
                self.chunks.put_nowait(chunk)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.chunks.get_nowait()
                    self.dropped += 1

    def close(self) -> None:
        self.put(b"")  # end of input (a None could be dropped as "oldest"; b"" is a marker)

    def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY)
        except OSError:
            self.failed = True
            return
        try:
            while True:
                chunk = self.chunks.get()
                if not chunk:
                    return
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:  # ffmpeg went away
            self.failed = True
        finally:
            os.close(fd)


class Encoder:
    """One ffmpeg run: ``start``, ``put_video``/``put_audio`` in real time, ``stop``."""

    def __init__(self, config: EncoderConfig, *, resume: bool) -> None:
        self.config = config
        self.resume = resume
        self.process: subprocess.Popen[bytes] | None = None
        self._video: _PipeWriter | None = None
        self._audio: dict[str, _PipeWriter] = {}
        self.log_path = config.work_dir / "ffmpeg.log"

    def start(self) -> None:
        cfg = self.config
        cfg.work_dir.mkdir(parents=True, exist_ok=True)
        for name in rendition_names(cfg.video) + rendition_names(cfg.audio):
            (cfg.out_dir / name).mkdir(parents=True, exist_ok=True)
        pipes = [cfg.video_pipe(), *(cfg.audio_pipe(a) for a in cfg.audio)]
        for pipe in pipes:
            with contextlib.suppress(FileNotFoundError):
                pipe.unlink()
            os.mkfifo(pipe, 0o600)
        if not cfg.name_file.exists():
            write_atomically(cfg.name_file, " ")
        font = font_file()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ffmpeg_command(cfg, resume=self.resume, font=font),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._video = _PipeWriter(cfg.video_pipe(), VIDEO_QUEUE_FRAMES)
        self._audio = {
            a.name: _PipeWriter(cfg.audio_pipe(a), AUDIO_QUEUE_CHUNKS) for a in cfg.audio
        }
        for writer in (self._video, *self._audio.values()):
            writer.start()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def put_video(self, frame: bytes) -> None:
        if self._video is not None:
            self._video.put(frame)

    def put_audio(self, rendition: str, pcm: bytes) -> None:
        writer = self._audio.get(rendition)
        if writer is not None:
            writer.put(pcm)

    def stop(self, timeout_s: float = 10.0) -> None:
        """End every input; ffmpeg then writes its last segments and exits."""
        writers = [w for w in (self._video, *self._audio.values()) if w is not None]
        for writer in writers:
            writer.close()
        process = self.process
        if process is None:
            return
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for writer in writers:
            if writer.is_alive():  # still blocked opening a pipe ffmpeg never opened
                with contextlib.suppress(OSError):
                    fd = os.open(writer.path, os.O_RDONLY | os.O_NONBLOCK)
                    os.close(fd)
            writer.join(timeout=2.0)


def write_atomically(path: Path, text: str) -> None:
    """Readers (players, ffmpeg's drawtext) never see a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rendition_names(renditions: Sequence[VideoRendition] | Sequence[AudioRendition]) -> list[str]:
    return [r.name for r in renditions]

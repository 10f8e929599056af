"""``Mp4Sink``: H.264 in a fragmented MP4, encoded while frames arrive.

Frames go to ffmpeg as raw RGB on its stdin the moment they are written, so an unbounded run
never holds more than the pipe's worth of video in memory. The file is fragmented MP4
(``empty_moov`` + a fragment per keyframe, one keyframe a second): it is playable at every
moment, not only after a clean close, and a run that is interrupted keeps the frames made so
far:

* Ctrl-C / SIGTERM handled by Python: :meth:`close` ends the stream and waits for ffmpeg;
* the Python process killed outright: ffmpeg (in its own session) sees end-of-file on its stdin
  and finishes the file itself;
* ffmpeg itself killed outright: the file holds every fragment written so far, which is all but
  the last second or so.

A resumed run (``fifo-diffusion resume``) continues the file with no frame lost or repeated. The
new frames are encoded into a second file next to it (``.NAME.continued.mp4``), which is joined to
the first when the sink closes, without re-encoding (ffmpeg's concat demuxer, ``-c copy``), and
renamed over it. Frames the killed run wrote after its last saved state are already in the file:
the resumed run makes them again, identical, and this sink drops that many before encoding. Until
the join, the first file stays as it was; a run killed before it leaves the second file, which the
next resume joins first. docs/resume-and-continue.md says why this and not appended fragments.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fifo_core.errors import SinkError
from fifo_core.sink import Sink, SinkSettings
from fifo_sinks._files import OutputLock, busy_error, check_can_create_folder, held_by_another_run
from fifo_sinks._ffmpeg import (
    EncoderProcess,
    check_fps,
    count_video_frames,
    even_size_filter,
    join_videos,
    keyframe_interval,
    raw_rgb_input,
)

MOVFLAGS = "+frag_keyframe+empty_moov+default_base_moof"


def continuation_path(target: str) -> Path:
    """Where a resumed run encodes its frames until they are joined to ``target``."""
    path = Path(target)
    return path.with_name(f".{path.name}.continued.mp4")


def frames_held(target: str) -> int:
    """Frames of ``target`` plus those of a continuation a killed resumed run left behind."""
    total = 0
    for path in (Path(target), continuation_path(target)):
        if path.is_file():
            total += count_video_frames(str(path))
    return total


class Mp4Sink(Sink):
    """Write an H.264/yuv420p MP4 to ``target``; odd frame sides are padded by one black pixel.

    An existing file at ``target`` is refused unless ``settings.overwrite``; while the sink is
    open, another run cannot write the same file (:meth:`reserve` locks it). Encoder quality can be tuned in a subclass through
    ``crf`` (lower is better, 0-51) and ``preset`` (x264's speed/size trade-off).
    """

    name = "mp4"
    crf: int = 18
    preset: str = "medium"
    keyframe_seconds: float = 1.0  # also the most a hard kill of ffmpeg itself can lose
    close_timeout_s: float = 120.0

    def __init__(self, target: str, settings: SinkSettings) -> None:
        super().__init__(target, settings)
        self._encoder: EncoderProcess | None = None
        self._encoder_failure_raised = False
        self._lock: OutputLock | None = None
        self._created_by_reserve = False
        self._continuing = False
        self._skip = 0  # frames to drop: the file holds them already (a resumed run)
        self._output = Path(target)  # where the encoder writes: the target, or the continuation
        self._size: tuple[int, int] | None = None

    @property
    def encoder_pid(self) -> int | None:
        """The running ffmpeg's process id (for diagnostics); ``None`` before the first frame."""
        return self._encoder.pid if self._encoder is not None else None

    @classmethod
    def check_target(cls, target: str, settings: SinkSettings) -> None:
        check_fps(settings.fps, cls.name)
        path = Path(target)
        if path.is_dir():
            raise SinkError(
                f"mp4 sink target {target!r} is a directory; give a file name such as {str(path / 'video.mp4')!r}, "
                "or end the target with '/' to write a PNG sequence into it"
            )
        check_can_create_folder(path.parent, cls.name, target)  # created, with its parents, at the first frame
        if held_by_another_run(path):
            raise busy_error(cls.name, target)
        if path.exists() and not settings.overwrite:
            raise SinkError(f"mp4 sink target {target!r} already exists; pass --overwrite to replace it, or choose another name")
        if path.exists() and not os.access(path, os.W_OK):
            raise SinkError(f"mp4 sink cannot replace {target!r}: the file is read-only; choose another name")

    @classmethod
    def check_continue(cls, target: str, settings: SinkSettings, frames: int) -> None:
        check_fps(settings.fps, cls.name)
        path = Path(target)
        if path.is_dir():
            raise SinkError(f"mp4 sink target {target!r} is a directory; a resumed run continues the MP4 file the run wrote")
        if held_by_another_run(path):
            raise busy_error(cls.name, target)
        check_can_create_folder(path.parent, cls.name, target)
        held = frames_held(target)
        if held < frames:
            raise SinkError(
                f"mp4 sink target {target!r} holds {held} frames, but the saved run had written {frames} to it, so frames "
                "were lost (the file was replaced, or ffmpeg itself was killed); resume with --sink NEW.mp4 to write the rest "
                "of the video to a new file"
            )

    def continue_from(self, frames: int) -> None:
        super().continue_from(frames)
        self._continuing = True

    def reserve(self) -> None:
        path = Path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        exclusive = not self.settings.overwrite and not self._continuing
        self._lock = OutputLock(path, exclusive_create=exclusive, sink=self.name, target=self.target)
        self._created_by_reserve = not existed
        if self._continuing:
            self._prepare_continuation()

    def _prepare_continuation(self) -> None:
        """Join a continuation a killed resumed run left, then count what the file holds: the
        frames beyond this run's position are dropped when they come again."""
        leftover = continuation_path(self.target)
        if leftover.is_file():
            if count_video_frames(self.target) > 0 and count_video_frames(str(leftover)) > 0:
                self._join(leftover)
            elif count_video_frames(self.target) == 0 and count_video_frames(str(leftover)) > 0:
                os.replace(leftover, self.target)
            leftover.unlink(missing_ok=True)
        held = count_video_frames(self.target) if Path(self.target).is_file() else 0
        if held < self.frames_written:
            raise SinkError(f"mp4 sink target {self.target!r} holds {held} frames, fewer than the {self.frames_written} the saved run wrote")
        self._skip = held - self.frames_written
        self._output = continuation_path(self.target) if held > 0 else Path(self.target)

    def _join(self, continuation: Path) -> None:
        joined = continuation.with_name(f".{Path(self.target).name}.joined.mp4")
        join_videos(self.target, str(continuation), str(joined), MOVFLAGS)
        os.replace(joined, self.target)  # the file is whole before and after, never half joined
        continuation.unlink(missing_ok=True)

    def _open(self, height: int, width: int) -> None:
        self._size = (height, width)
        if self._skip == 0:
            self._start_encoder()

    def _start_encoder(self) -> None:
        assert self._size is not None
        height, width = self._size
        Path(self.target).parent.mkdir(parents=True, exist_ok=True)
        self._encoder = EncoderProcess(
            [
                *raw_rgb_input(height, width, self.settings.fps),
                *even_size_filter(height, width),
                "-an",
                "-c:v", "libx264",
                "-preset", self.preset,
                "-crf", str(self.crf),
                "-pix_fmt", "yuv420p",
                "-g", keyframe_interval(self.settings.fps, self.keyframe_seconds),
                "-movflags", MOVFLAGS,
                "-flush_packets", "1",  # each fragment reaches the file at once, not when a 32 KiB buffer fills
                "-f", "mp4",
                # "file:" so that a name with a colon or a leading dash is a file, never a protocol or option
                "-y", f"file:{os.path.abspath(self._output)}",
            ]  # fmt: skip
        )

    def _write(self, frame: np.ndarray) -> None:
        if self._skip > 0:
            self._skip -= 1  # already in the file (a resumed run makes it again, identical)
            return
        if self._encoder is None:
            self._start_encoder()
        assert self._encoder is not None
        try:
            self._encoder.send(frame)
        except BrokenPipeError:
            status = self._encoder.finish(timeout=5)
            self._encoder_failure_raised = True  # so close() does not report it a second time
            raise SinkError(
                f"ffmpeg stopped (exit status {status}) while writing {self.target!r} after "
                f"{self.frames_written} frames:\n{self._encoder.stderr_tail()}"
            ) from None

    def _close(self) -> None:
        try:
            self._finish_encoder()
        finally:
            if self._lock is not None:
                if self._encoder is None and self._created_by_reserve:
                    Path(self.target).unlink(missing_ok=True)  # no frame came: leave no empty file
                self._lock.release()

    def _finish_encoder(self) -> None:
        if self._encoder is None:
            return  # no frame came, so no file was started
        status = self._encoder.finish(timeout=self.close_timeout_s)
        if status != 0 and not self._encoder_failure_raised:
            raise SinkError(
                f"ffmpeg failed finishing {self.target!r} (exit status {status}); "
                f"{self.frames_written} frames were sent to it. ffmpeg said:\n{self._encoder.stderr_tail()}"
            )
        if status == 0 and self._output != Path(self.target):
            self._join(self._output)  # after a failure it stays apart; the next resume joins what it holds


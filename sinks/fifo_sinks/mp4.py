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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fifo_core.errors import SinkError
from fifo_core.sink import Sink, SinkSettings
from fifo_sinks._files import OutputLock, busy_error, check_can_create_folder, held_by_another_run
from fifo_sinks._ffmpeg import EncoderProcess, check_fps, even_size_filter, keyframe_interval, raw_rgb_input


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

    def reserve(self) -> None:
        path = Path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        self._lock = OutputLock(path, exclusive_create=not self.settings.overwrite, sink=self.name, target=self.target)
        self._created_by_reserve = not existed

    def _open(self, height: int, width: int) -> None:
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
                "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
                "-flush_packets", "1",  # each fragment reaches the file at once, not when a 32 KiB buffer fills
                "-f", "mp4",
                # "file:" so that a name with a colon or a leading dash is a file, never a protocol or option
                "-y", f"file:{os.path.abspath(self.target)}",
            ]  # fmt: skip
        )

    def _write(self, frame: np.ndarray) -> None:
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


"""One ffmpeg encoder process fed raw RGB frames on stdin; shared by the MP4 and RTMP sinks.

The encoder is the static ffmpeg that ``imageio-ffmpeg`` ships, so no system ffmpeg is needed.
It runs in its own session (``start_new_session=True``): Ctrl-C in a terminal signals the whole
foreground process group, and an encoder killed by it would leave a truncated file before Python
had the chance to close its stdin. Detached, it ends only when its stdin reaches end-of-file,
which also happens when the Python process dies, so even a hard-killed run leaves a finished file.
"""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

import numpy as np

from fifo_core.errors import SinkError

STDERR_TAIL_LINES = 20


def ffmpeg_executable() -> str:
    try:
        import imageio_ffmpeg
    except ImportError as error:  # pragma: no cover - a core dependency, missing only in broken installs
        raise SinkError("the video sinks need imageio-ffmpeg; install it with `pip install imageio-ffmpeg`") from error
    return imageio_ffmpeg.get_ffmpeg_exe()


def check_fps(fps: float, sink_name: str) -> None:
    if not fps > 0:
        raise SinkError(f"{sink_name} sink needs a frame rate above 0, got fps={fps}; pass e.g. --fps 8")


def raw_rgb_input(height: int, width: int, fps: float) -> list[str]:
    """ffmpeg arguments that read ``'h w 3'`` uint8 frames from stdin at ``fps``."""
    return [
        "-f", "rawvideo",
        "-pix_fmt", "rgb24",
        "-video_size", f"{width}x{height}",
        "-framerate", format_fps(fps),
        "-i", "pipe:0",
    ]  # fmt: skip


def even_size_filter(height: int, width: int) -> list[str]:
    """yuv420p stores colour at half resolution, so H.264 needs even sides: add one black row
    and/or column at the bottom/right of odd-sized frames (documented in docs/sinks.md)."""
    if height % 2 == 0 and width % 2 == 0:
        return []
    return ["-vf", "pad=width=ceil(iw/2)*2:height=ceil(ih/2)*2:x=0:y=0:color=black"]


def format_fps(fps: float) -> str:
    # repr keeps 23.976 as 23.976; ffmpeg turns it into the nearest rational itself.
    return repr(float(fps))


def keyframe_interval(fps: float, seconds: float) -> str:
    return str(max(1, round(fps * seconds)))


class EncoderProcess:
    """A running ffmpeg: frames go in through :meth:`send`, stderr is kept as a short tail.

    With ``progress=True`` ffmpeg also reports on stderr how many frames it has encoded and
    handed to its output (``-progress``), which :attr:`frames_out` exposes.
    """

    def __init__(self, arguments: Sequence[str], *, progress: bool = False) -> None:
        command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"]
        if progress:
            command += ["-progress", "pipe:2", "-stats_period", "0.25"]
        self.command = command + list(arguments)
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.frames_out = 0
        # -nostdin only stops ffmpeg reading commands from the terminal; frames still come on pipe:0.
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                bufsize=0,
            )
        except OSError as error:
            raise SinkError(
                f"could not start ffmpeg ({self.command[0]}): {error}; "
                "reinstall it with `pip install --force-reinstall imageio-ffmpeg`"
            ) from error
        self.pid = self.process.pid
        self._stdin_fd = self.process.stdin.fileno()
        # A full stderr pipe would stall ffmpeg, so it is always being read.
        self._reader = threading.Thread(target=self._read_stderr, name=f"ffmpeg-{self.pid}-stderr", daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            key, sep, value = line.partition("=")
            if sep and key == "frame" and value.isdigit():
                self.frames_out = int(value)
            elif sep and " " not in key and key:
                continue  # the rest of a -progress block
            elif line:
                self._stderr_tail.append(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail) or "(ffmpeg printed nothing)"

    def send(self, frame: np.ndarray) -> None:
        """Write one whole frame, waiting as long as ffmpeg needs; ``BrokenPipeError`` if it has gone.

        A signal handler that raises (Ctrl-C's ``KeyboardInterrupt``) could stop a write halfway
        and leave ffmpeg with part of a frame, shifting every later frame. In the main thread,
        SIGINT and SIGTERM are therefore held back until the frame is in the pipe; other threads
        never run Python signal handlers, so their writes cannot be cut short this way.
        """
        data = memoryview(frame.reshape(-1))
        hold_signals = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
        if hold_signals:
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            while data:
                data = data[os.write(self._stdin_fd, data) :]
        finally:
            if hold_signals:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def send_within(self, frame: np.ndarray, timeout: float) -> bool:
        """Write one whole frame unless ffmpeg has gone or takes none of it for ``timeout`` s.

        A live encoder whose network has gone silent stops reading its stdin; a blocking write
        would then hang the caller for as long as TCP takes to give up. False means the encoder
        is no use any more (a partial frame may be in its pipe) and should be killed.
        """
        if os.get_blocking(self._stdin_fd):
            os.set_blocking(self._stdin_fd, False)
        data = memoryview(frame.reshape(-1))
        deadline = time.monotonic() + timeout
        while data:
            try:
                data = data[os.write(self._stdin_fd, data) :]
                continue
            except BlockingIOError:
                pass
            except OSError:  # BrokenPipeError and the like: ffmpeg has exited
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([], [self._stdin_fd], [], remaining)
        return True

    def finish(self, timeout: float) -> int:
        """Close stdin so ffmpeg flushes and ends; wait up to ``timeout`` s, then kill it.

        Returns ffmpeg's exit status (negative when it had to be killed)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass  # ffmpeg already gone: its pipe is broken, and its exit status says why
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            status = self.process.returncode
        self._reader.join(timeout=2)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self._reader.join(timeout=2)


def run_ffmpeg(arguments: Sequence[str], *, timeout: float, what: str) -> str:
    """Run ffmpeg to completion on files (no frames on stdin); return its stderr. A failure is a
    :class:`SinkError` that quotes ffmpeg's last lines."""
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", *arguments]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SinkError(f"ffmpeg took more than {timeout:g} s {what}") from None
    stderr = result.stderr.decode("utf-8", errors="replace")
    if result.returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
        raise SinkError(f"ffmpeg failed {what} (exit status {result.returncode}):\n{tail}")
    return stderr


def count_video_frames(path: str) -> int:
    """The video frames stored in the file at ``path``, counted from its packets without decoding
    (0 for an empty file, which a run killed before its first frame leaves)."""
    if os.path.getsize(path) == 0:
        return 0
    stderr = run_ffmpeg(
        ["-loglevel", "info", "-i", f"file:{os.path.abspath(path)}", "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
        timeout=600, what=f"counting the frames of {path!r}",
    )
    counts = [int(value) for value in re.findall(r"frame=\s*(\d+)", stderr)]
    return counts[-1] if counts else 0


def join_videos(first: str, second: str, output: str, movflags: str) -> None:
    """``first`` then ``second`` (same codec and settings) into ``output``, without re-encoding
    (ffmpeg's concat demuxer with stream copy)."""
    listing = f"{output}.txt"
    quoted = [os.path.abspath(path).replace("'", "'\\''") for path in (first, second)]
    with open(listing, "w", encoding="utf-8") as handle:
        handle.write("".join(f"file '{path}'\n" for path in quoted))
    try:
        run_ffmpeg(
            ["-loglevel", "error", "-f", "concat", "-safe", "0", "-i", f"file:{os.path.abspath(listing)}", "-map", "0:v:0",
             "-c", "copy", "-movflags", movflags, "-f", "mp4", "-y", f"file:{os.path.abspath(output)}"],
            timeout=3600, what=f"joining {second!r} to {first!r}",
        )  # fmt: skip
    finally:
        os.unlink(listing)

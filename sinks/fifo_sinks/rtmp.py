"""``RtmpSink``: a live H.264/FLV stream to an ``rtmp://`` or ``rtmps://`` server.

A live stream runs on the wall clock, a diffusion model does not. Between the two sits a
bounded buffer and a pacer thread that hands ffmpeg exactly one frame every ``1/fps`` seconds:

* generator slower than real time: the buffer runs dry and the last frame is sent again
  (``frames_repeated``), so viewers see a still picture instead of a dropped stream;
* generator faster than real time: the buffer fills and :meth:`write` blocks until the pacer
  takes a frame, so nothing is dropped and the generator simply waits;
* server refused or dropped the connection: ffmpeg exits, the pacer keeps the clock running and
  discards the frames that fall due meanwhile (``frames_dropped``: live video cannot be paused),
  and starts a new ffmpeg after a back-off that doubles on each consecutive failure.

ffmpeg's own ``-re`` paces by reading a file; frames coming down a pipe are paced here instead.
See docs/live-streaming.md.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import queue
import re
import threading
import time
from urllib.parse import SplitResult, urlsplit

import numpy as np

from fifo_core.errors import SinkError
from fifo_core.sink import Sink, SinkSettings, redact_target
from fifo_sinks._ffmpeg import EncoderProcess, check_fps, even_size_filter, keyframe_interval, raw_rgb_input

log = logging.getLogger(__name__)

SCHEMES = ("rtmp", "rtmps")
URL_SHAPE = "rtmp://host[:port]/application/stream-key (or rtmps://...)"
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def is_rtmp_url(target: str) -> bool:
    """Whether ``target`` is meant as a stream, well formed or not (``check_target`` judges that)."""
    return target.split(":", 1)[0].lower() in SCHEMES and ":" in target


class RtmpSink(Sink):
    """Stream to ``target`` in real time; see the module docstring for the buffer policy.

    After :meth:`close`, these attributes tell what happened:

    ``frames_written``: frames the generator wrote; ``frames_sent``: frames ffmpeg reported as
    encoded and streamed, repeats included; ``frames_repeated``: repeats the pacer inserted;
    ``frames_dropped``: written frames discarded while there was no connection (or left over
    when closing took too long); ``connections`` / ``reconnects``: ffmpeg processes started;
    ``connection_errors``: the latest reasons a connection ended.
    """

    name = "rtmp"
    buffer_seconds: float = 2.0
    crf: int = 20
    preset: str = "veryfast"
    keyframe_seconds: float = 2.0  # what most streaming services ask for
    stall_timeout_s: float = 10.0  # an encoder that takes no input this long has a dead network
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 15.0
    stable_after_s: float = 10.0  # a connection that lasted this long resets the back-off
    close_timeout_s: float = 10.0  # most time close() spends streaming what is still buffered
    finish_timeout_s: float = 5.0

    def __init__(self, target: str, settings: SinkSettings) -> None:
        super().__init__(target, settings)
        self.frames_repeated = 0
        self.frames_dropped = 0
        self.connections = 0
        self.reconnects = 0
        self.connection_errors: collections.deque[str] = collections.deque(maxlen=20)
        self.buffer_frames = max(2, round(settings.fps * self.buffer_seconds))
        self._frames: queue.Queue[np.ndarray] = queue.Queue(maxsize=self.buffer_frames)
        self._closing = threading.Event()
        self._close_deadline = float("inf")
        self._pacer: threading.Thread | None = None
        self._pacer_error: BaseException | None = None
        self._encoder: EncoderProcess | None = None
        self._encoder_started = 0.0
        self._frames_sent_by_ended_encoders = 0
        self._consecutive_failures = 0
        self._retry_at = 0.0
        self._size: tuple[int, int] = (0, 0)
        self._sending_since: float | None = None  # when the pacer's current write to ffmpeg began

    @property
    def frames_sent(self) -> int:
        encoder = self._encoder  # read once: the pacer thread may replace it meanwhile
        return self._frames_sent_by_ended_encoders + (encoder.frames_out if encoder is not None else 0)

    @property
    def redacted_target(self) -> str:
        return redact_stream_key(self.target)

    def summary(self) -> str:
        return (
            f"rtmp {self.redacted_target}: {self.frames_written} frames written, {self.frames_sent} sent "
            f"({self.frames_repeated} repeats), {self.frames_dropped} dropped, {self.reconnects} reconnects"
        )

    # -- checks before generation -----------------------------------------------------------

    @classmethod
    def check_target(cls, target: str, settings: SinkSettings) -> None:
        check_fps(settings.fps, cls.name)
        check_url(target)

    @classmethod
    def check_continue(cls, target: str, settings: SinkSettings, frames: int) -> None:
        """A stream has no frames to keep: a resumed run simply connects again."""
        cls.check_target(target, settings)

    # -- the generator's side ---------------------------------------------------------------

    def _open(self, height: int, width: int) -> None:
        self._size = (height, width)
        self._pacer = threading.Thread(target=self._pace, name="rtmp-pacer", daemon=True)
        self._pacer.start()

    def _write(self, frame: np.ndarray) -> None:
        if frame.flags.writeable:
            frame = frame.copy()  # sent later from another thread; the caller may reuse its array
        while True:
            self._raise_if_pacer_stopped()
            if self._frames.full() and self._connection_stalled():
                self._drop_oldest()
            try:
                self._frames.put(frame, timeout=0.25)
                return
            except queue.Full:
                continue  # the generator is ahead of real time: wait for the pacer

    def _connection_stalled(self) -> bool:
        """Whether the pacer has been stuck writing one frame to ffmpeg for a buffer's worth of
        time: the server stopped reading, and it may take ``stall_timeout_s`` to give up on it."""
        since = self._sending_since
        return since is not None and time.monotonic() - since > self.buffer_seconds

    def _drop_oldest(self) -> None:
        # Live video cannot wait for a silent server any more than for a missing one: the oldest
        # buffered frame is dropped, so the generator keeps its pace and the others sinks theirs.
        try:
            self._frames.get_nowait()
        except queue.Empty:
            return
        self.frames_dropped += 1  # the pacer is blocked in its write, so it is not counting now

    def _close(self) -> None:
        if self._pacer is None:
            return  # no frame came, so no connection was made
        self._close_deadline = time.monotonic() + self.close_timeout_s
        self._closing.set()
        self._pacer.join(self.close_timeout_s + self.stall_timeout_s + self.finish_timeout_s + 5)
        if self._pacer.is_alive():
            raise SinkError(f"rtmp sink {self.redacted_target} did not stop in time; its ffmpeg may still be running")
        self._raise_if_pacer_stopped()
        # a stream that lost frames is worth a line on the terminal; a clean one only at INFO
        log.log(logging.WARNING if self.frames_dropped or self.reconnects else logging.INFO, "%s", self.summary())
        if self.frames_sent == 0:
            reason = self.connection_errors[-1] if self.connection_errors else "no reason given"
            raise SinkError(
                f"rtmp sink never streamed to {self.redacted_target} ({self.connections} attempts; last: {reason}). "
                "Check that the server is running and reachable and that the application name and stream key are right"
            )

    def _raise_if_pacer_stopped(self) -> None:
        if self._pacer_error is not None:
            raise SinkError(f"rtmp sink {self.redacted_target} stopped: {self._pacer_error!r}") from self._pacer_error
        if self._pacer is not None and not self._pacer.is_alive() and not self._closing.is_set():
            raise SinkError(f"rtmp sink {self.redacted_target} stopped unexpectedly")

    # -- the pacer thread -------------------------------------------------------------------

    def _pace(self) -> None:
        try:
            self._stream()
        except BaseException as error:  # noqa: BLE001 - handed to the generator's thread by _write/_close
            self._pacer_error = error
        finally:
            self._end_encoder()

    def _stream(self) -> None:
        period = 1.0 / self.settings.fps
        frame = self._first_frame()
        if frame is None:
            return
        fresh = True
        tick = time.monotonic()
        while True:
            self._deliver(frame, fresh)
            tick += period
            now = time.monotonic()
            if now - tick > 2 * period:
                tick = now  # fell behind (encoder start, a stall): restart the clock rather than burst
            else:
                time.sleep(max(0.0, tick - now))
            if self._closing.is_set() and time.monotonic() > self._close_deadline:
                self.frames_dropped += self._frames.qsize()
                return
            try:
                frame, fresh = self._frames.get_nowait(), True
            except queue.Empty:
                if self._closing.is_set():
                    return  # every write happened before closing was set, so nothing is left
                fresh = False  # the generator is behind real time: show the last frame again

    def _first_frame(self) -> np.ndarray | None:
        while True:
            try:
                return self._frames.get(timeout=0.1)
            except queue.Empty:
                if self._closing.is_set() and self._frames.empty():
                    return None

    def _deliver(self, frame: np.ndarray, fresh: bool) -> None:
        encoder = self._connected_encoder()
        self._sending_since = time.monotonic()
        try:
            sent = encoder is not None and encoder.send_within(frame, self.stall_timeout_s)
        finally:
            self._sending_since = None
        if sent:
            if not fresh:
                self.frames_repeated += 1
            return
        if encoder is not None:
            self._lose_encoder("it stopped taking frames" if encoder.alive else "ffmpeg exited")
        if fresh:
            self.frames_dropped += 1

    def _connected_encoder(self) -> EncoderProcess | None:
        """The running encoder; a new one when the back-off allows; ``None`` while waiting."""
        if self._encoder is not None and not self._encoder.alive:
            self._lose_encoder("ffmpeg exited")
        # also while closing: what is still buffered deserves a connection (close() bounds the time)
        if self._encoder is None and time.monotonic() >= self._retry_at:
            self._start_encoder()
        return self._encoder

    def _start_encoder(self) -> None:
        if self.connections:
            self.reconnects += 1
        self.connections += 1
        height, width = self._size
        self._encoder = EncoderProcess(
            [
                *raw_rgb_input(height, width, self.settings.fps),
                *even_size_filter(height, width),
                "-an",
                "-c:v", "libx264",
                "-preset", self.preset,
                "-tune", "zerolatency",
                "-crf", str(self.crf),
                "-pix_fmt", "yuv420p",
                "-g", keyframe_interval(self.settings.fps, self.keyframe_seconds),
                "-f", "flv",
                self.target,
            ],  # fmt: skip
            progress=True,
        )
        self._encoder_started = time.monotonic()

    def _lose_encoder(self, why: str) -> None:
        encoder, self._encoder = self._encoder, None
        assert encoder is not None
        encoder.kill()
        lived = time.monotonic() - self._encoder_started
        self._frames_sent_by_ended_encoders += encoder.frames_out
        if encoder.frames_out > 0 and lived >= self.stable_after_s:
            self._consecutive_failures = 1
        else:
            self._consecutive_failures += 1
        backoff = min(self.max_backoff_s, self.initial_backoff_s * 2 ** (self._consecutive_failures - 1))
        self._retry_at = time.monotonic() + backoff
        reason = self._ffmpeg_said(encoder)
        message = (
            f"connection {self.connections} lost after {lived:.1f}s: {why} "
            f"(exit status {encoder.process.returncode}): {reason}"
        )
        self.connection_errors.append(message)
        log.warning("rtmp %s: %s; reconnecting in %.1fs", self.redacted_target, message, backoff)

    def _end_encoder(self) -> None:
        encoder, self._encoder = self._encoder, None
        if encoder is None:
            return
        status = encoder.finish(timeout=self.finish_timeout_s)
        self._frames_sent_by_ended_encoders += encoder.frames_out
        if status != 0:
            self.connection_errors.append(f"ffmpeg ended with exit status {status}: {self._ffmpeg_said(encoder)}")

    def _ffmpeg_said(self, encoder: EncoderProcess) -> str:
        # ffmpeg names the URL in its errors; keep the stream key out of logs and reports.
        return encoder.stderr_tail().replace(self.target, self.redacted_target).splitlines()[-1]


def check_url(target: str) -> SplitResult:
    """Check the shape of an RTMP URL without touching the network; raise a teaching SinkError."""

    def bad(problem: str) -> SinkError:
        return SinkError(f"rtmp sink target {redact_stream_key(target)!r}: {problem}; expected {URL_SHAPE}")

    if any(character.isspace() for character in target):
        raise bad("the URL contains white space (quote it whole, and leave no spaces in the stream key)")
    try:
        parts = urlsplit(target)
        host = parts.hostname
    except ValueError as error:  # e.g. a bracketed host that is not an IPv6 address
        raise bad(f"the URL cannot be parsed ({error})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise bad(f"the scheme {parts.scheme!r} is not rtmp or rtmps")
    if not target.lower().startswith(f"{parts.scheme.lower()}://"):
        raise bad("the scheme must be followed by '//' and the host")
    if not host:
        raise bad("there is no host")
    if ":" in host:  # only an IPv6 literal, written in brackets, has a colon after urlsplit
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not a valid IPv6 address") from None
    elif len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.removesuffix(".").split(".")):
        raise bad(f"{host!r} is not a valid host name or address")
    try:
        port = parts.port
    except ValueError:
        raise bad("the port must be a whole number from 1 to 65535") from None
    if port == 0:
        raise bad("the port must be a whole number from 1 to 65535")
    segments = parts.path.lstrip("/").split("/")
    if len(segments) < 2 or not all(segments):
        raise bad(
            f"the path {parts.path or '(none)'!r} must name an application and a stream key, "
            "e.g. /live/my-stream, with no empty parts"
        )
    return parts


def redact_stream_key(target: str) -> str:
    """``rtmp://host/live/secret`` -> ``rtmp://host/live/***``: stream keys are passwords."""
    return redact_target(target)

"""Sinks consume dequeued frames as they come: the ``Sink`` base class and the fan-out.

A sink is a context manager with a validating public :meth:`Sink.write` and a private part
(``_open``, ``_write``, ``_close``) that each sink implements. :meth:`Sink.check_target` runs before
generation starts and must create nothing, so bad targets fail early and leave no output behind.

:class:`SinkFanout` hands every frame to every sink, each on its own thread, so a slow sink delays
nobody until its buffer is full, and a failing sink is closed, named in a report and dropped while
the others carry on.
"""

from __future__ import annotations

import queue
import threading
import time
from urllib.parse import urlsplit
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from fifo_core.errors import SinkError


def redact_target(target: str) -> str:
    """``target`` as it may be shown: a URL loses any ``user:password@`` and its last path part
    (``rtmp://host/live/secret`` -> ``rtmp://host/live/***``), since stream keys and credentials
    are passwords. Files and folders are shown as given."""
    if "://" not in target:
        return target
    try:
        parts = urlsplit(target)
    except ValueError:  # not parseable: hide whatever follows the last slash
        head, _, key = target.rpartition("/")
        return f"{head}/***" if key and "//" in head else target
    head, _, key = parts.path.rpartition("/")
    netloc = parts.netloc.rpartition("@")[2]
    if not head or not key:
        return f"{parts.scheme}://{netloc}{parts.path}"
    return f"{parts.scheme}://{netloc}{head}/***"


@dataclass(frozen=True)
class SinkSettings:
    """What every sink is told about the video."""

    fps: float = 8.0
    overwrite: bool = False  # replace an existing output file instead of refusing it


class Sink(ABC):
    """Base class of sinks. Subclasses set ``name`` and implement the three private methods."""

    name: ClassVar[str] = "sink"

    def __init__(self, target: str, settings: SinkSettings) -> None:
        self.target = target
        self.settings = settings
        self.frames_written = 0
        self.frame_shape: tuple[int, int, int] | None = None
        self.closed = False

    @classmethod
    def check_target(cls, target: str, settings: SinkSettings) -> None:
        """Raise :class:`SinkError` when ``target`` cannot be written; create nothing."""

    @classmethod
    def check_continue(cls, target: str, settings: SinkSettings, frames: int) -> None:
        """Raise :class:`SinkError` unless this sink can continue ``target``, an output a saved run
        (:mod:`fifo_core.state`) left holding ``frames`` frames; create and change nothing. A sink
        that can continue overrides this and :meth:`continue_from`; by default it cannot."""
        raise SinkError(
            f"{cls.name} sink cannot continue {target!r} after a resume; resume with --sink NEW_TARGET to write "
            "the rest of the video to a new output"
        )

    def continue_from(self, frames: int) -> None:
        """Make this sink continue its target, which holds ``frames`` frames of the video; called
        before :meth:`reserve`, when a saved run resumes (after :meth:`check_continue`)."""
        self.frames_written = frames

    def reserve(self) -> None:
        """Claim the target against other runs, just before generation starts; raise
        :class:`SinkError` when another run holds it. Nothing by default (a stream can have
        several writers); file sinks take a lock they release in ``_close``."""

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame ``'h w 3'`` uint8."""
        if self.closed:
            raise SinkError(f"{self.name} sink {self.target!r} is closed; open a new sink to write more frames")
        if not isinstance(frame, np.ndarray):
            raise SinkError(f"{self.name} sink expects a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise SinkError(f"{self.name} sink expects uint8 pixels, got {frame.dtype}; convert with frame.astype(np.uint8)")
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise SinkError(f"{self.name} sink expects frames shaped (height, width, 3), got {frame.shape}")
        if self.frame_shape is None:
            self._open(frame.shape[0], frame.shape[1])
            self.frame_shape = frame.shape
        elif frame.shape != self.frame_shape:
            raise SinkError(
                f"{self.name} sink got a frame of shape {frame.shape} after frames of shape {self.frame_shape}; "
                "every frame of a video must have the same size"
            )
        self._write(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def _open(self, height: int, width: int) -> None:
        """Called with the size of the first frame, before it is written."""

    @abstractmethod
    def _write(self, frame: np.ndarray) -> None:
        """Write one validated frame."""

    @abstractmethod
    def _close(self) -> None:
        """Flush everything written; called once, also when no frame was written."""


@dataclass(frozen=True)
class SinkSpec:
    """What a plugin registers: a sink class and the targets it accepts."""

    name: str
    sink_class: type[Sink]
    matches: Callable[[str], bool]
    description: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class SinkFailure:
    sink: str
    target: str
    error: BaseException
    frames_written: int

    def describe(self) -> str:
        shown = redact_target(self.target)
        reason = str(self.error).replace(self.target, shown)
        return f"{self.sink} sink {shown!r} failed after {self.frames_written} frames: {reason}"


def reserve_targets(sinks: Sequence[Sink]) -> None:
    """:meth:`Sink.reserve` every sink, or none: on a refusal the ones already reserved are
    closed (releasing their claim) and the refusal is raised."""
    reserved: list[Sink] = []
    try:
        for sink in sinks:
            sink.reserve()
            reserved.append(sink)
    except BaseException:
        for sink in reserved:
            sink.close()
        raise


_CLOSE = object()

# How long a sink's full buffer may hold the run back before that sink is failed: far longer than
# any healthy write (an encoder's or a network's hiccup), short enough that a hung disk or
# network share does not stop a long video.
STALL_TIMEOUT_S = 60.0


class _SinkWorker:
    def __init__(self, sink: Sink, buffer_frames: int, report: Callable[[SinkFailure], None]) -> None:
        self.sink = sink
        self.frames: queue.Queue = queue.Queue(maxsize=buffer_frames)
        self.failed = threading.Event()
        self._report = report
        self.thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (frame := self.frames.get()) is not _CLOSE:
                if not self.failed.is_set():
                    self.sink.write(frame)
                self.frames.task_done()  # counted for SinkFanout.sync
        except BaseException as error:  # noqa: BLE001 - any failure of one sink must stay with it
            self._fail(error)
            self._drain()
        try:
            self.sink.close()
        except BaseException as error:  # noqa: BLE001
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if not self.failed.is_set():
            self.failed.set()
            self._report(SinkFailure(self.sink.name, self.sink.target, error, self.sink.frames_written))

    def _drain(self) -> None:
        while self.frames.get() is not _CLOSE:
            pass

    def stalled(self, timeout_s: float) -> None:
        """Fail the sink because its buffer stayed full for ``timeout_s`` seconds."""
        self._fail(
            SinkError(
                f"took no frame for {timeout_s:g} s with its buffer of {self.frames.maxsize} frames full "
                "(a stalled disk or network?); it is dropped so the run and the other outputs go on, "
                "and it keeps the frames it had written"
            )
        )

    def send_close(self) -> None:
        """Queue the end marker; a failed sink's unwritten frames are discarded first, so a
        stalled one cannot block the close."""
        if self.failed.is_set():
            try:
                while True:
                    self.frames.get_nowait()
            except queue.Empty:
                pass
            self.frames.put_nowait(_CLOSE)  # room: emptied just above, and only the run's thread puts
            return
        self.frames.put(_CLOSE)


class SinkFanout:
    """Deliver frames to several sinks, isolated from each other.

    Each sink gets a thread and a buffer of ``buffer_frames`` frames; :meth:`write` returns as
    soon as every live sink's buffer has room. A sink whose buffer stays full for
    ``stall_timeout_s`` seconds (a hung disk or network share) is failed, so it holds the run back
    by that long at most, once; :meth:`close` waits for a failed sink's thread no longer than that
    either. Failures are collected in :attr:`failures` and passed to ``on_failure`` as they happen.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        buffer_frames: int = 64,
        on_failure: Callable[[SinkFailure], None] | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        self.failures: list[SinkFailure] = []
        self.stall_timeout_s = stall_timeout_s
        self._lock = threading.Lock()
        self._on_failure = on_failure
        self._workers = [_SinkWorker(sink, buffer_frames, self._record) for sink in sinks]
        self._closed = False

    def _record(self, failure: SinkFailure) -> None:
        with self._lock:
            self.failures.append(failure)
        if self._on_failure is not None:
            self._on_failure(failure)

    @property
    def live_sinks(self) -> list[Sink]:
        return [worker.sink for worker in self._workers if not worker.failed.is_set()]

    def write(self, frame: np.ndarray) -> None:
        frame = np.array(frame, copy=True)
        frame.setflags(write=False)  # shared by every sink's thread
        for worker in self._workers:
            if not worker.failed.is_set():
                try:
                    worker.frames.put(frame, timeout=self.stall_timeout_s)
                except queue.Full:
                    worker.stalled(self.stall_timeout_s)

    def sync(self) -> None:
        """Wait until every live sink has written every frame handed to it (a sink that stays
        stuck longer than the stall timeout is failed), so that ``frames_written`` is what each
        output holds; a run's saved state records it (:mod:`fifo_core.state`)."""
        for worker in self._workers:
            deadline = time.monotonic() + self.stall_timeout_s
            while not worker.failed.is_set() and worker.frames.unfinished_tasks:
                if time.monotonic() > deadline:
                    worker.stalled(self.stall_timeout_s)
                    break
                time.sleep(0.002)

    def close(self) -> list[SinkFailure]:
        """Wait until every sink has written its buffer and closed; return the failures."""
        if not self._closed:
            self._closed = True
            for worker in self._workers:
                worker.send_close()
            for worker in self._workers:
                # a live sink flushes its whole buffer; a failed one may be stuck in a write for good
                worker.thread.join(timeout=self.stall_timeout_s if worker.failed.is_set() else None)
        return list(self.failures)

    def __enter__(self) -> SinkFanout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

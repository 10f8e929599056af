"""SinkFanout keeps sinks apart: one that fails is named and dropped, one that is slow makes no
other sink lose or reorder frames; and a real MP4 sink beside them holds every frame."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from fifo_core.sink import Sink, SinkFanout, SinkSettings
from fifo_sinks import ImageSequenceSink, Mp4Sink

from .coded_frames import coded_frame, read_index

FRAMES = 40


class RecordingSink(Sink):
    name = "recording"

    def __init__(self, target: str, settings: SinkSettings) -> None:
        super().__init__(target, settings)
        self.indices: list[int] = []
        self.closed_cleanly = False

    def _open(self, height: int, width: int) -> None:
        pass

    def _write(self, frame: np.ndarray) -> None:
        self.indices.append(read_index(frame))

    def _close(self) -> None:
        self.closed_cleanly = True


class FailingSink(RecordingSink):
    name = "failing"
    fail_at = 5

    def _write(self, frame: np.ndarray) -> None:
        if self.frames_written == self.fail_at:
            raise OSError("disk full (simulated)")
        super()._write(frame)


class SlowSink(RecordingSink):
    name = "slow"

    def _write(self, frame: np.ndarray) -> None:
        time.sleep(0.01)
        super()._write(frame)


@pytest.mark.timeout(30)
def test_a_failing_sink_is_reported_by_name_and_the_others_get_every_frame(tmp_path: Path) -> None:
    reported = []
    recording = RecordingSink("memory", SinkSettings())
    failing = FailingSink("nowhere", SinkSettings())
    video = Mp4Sink(str(tmp_path / "video.mp4"), SinkSettings(fps=8))
    fanout = SinkFanout([failing, recording, video], buffer_frames=2, on_failure=reported.append)
    for index in range(FRAMES):
        fanout.write(coded_frame(index))
    failures = fanout.close()

    assert [failure.sink for failure in failures] == ["failing"]
    assert reported == failures
    failure = failures[0]
    assert failure.target == "nowhere" and failure.frames_written == FailingSink.fail_at
    assert "disk full" in str(failure.error) and "failing sink 'nowhere' failed after 5 frames" in failure.describe()
    assert failing.closed, "a failed sink is still closed, so it can release what it holds"
    assert fanout.live_sinks == [recording, video]
    assert recording.indices == list(range(FRAMES)) and recording.closed_cleanly
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "video.mp4"))[0] == FRAMES


@pytest.mark.timeout(30)
def test_a_slow_sink_makes_no_other_sink_lose_or_reorder_frames(tmp_path: Path) -> None:
    slow = SlowSink("slow", SinkSettings())
    fast = RecordingSink("fast", SinkSettings())
    images = ImageSequenceSink(str(tmp_path / "frames"), SinkSettings())
    began = time.perf_counter()
    with SinkFanout([slow, fast, images], buffer_frames=3) as fanout:
        for index in range(FRAMES):
            fanout.write(coded_frame(index))
    assert time.perf_counter() - began >= FRAMES * 0.01 * 0.9, "the slow sink really was the bottleneck"
    assert fanout.failures == []
    assert slow.indices == list(range(FRAMES))
    assert fast.indices == list(range(FRAMES))
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == FRAMES


class StalledSink(RecordingSink):
    """Its first write hangs until ``release`` is set, as a write to a hung disk would."""

    name = "stalled"

    def __init__(self, target: str, settings: SinkSettings) -> None:
        super().__init__(target, settings)
        self.release = threading.Event()

    def _write(self, frame: np.ndarray) -> None:
        self.release.wait()
        super()._write(frame)


@pytest.mark.timeout(30)
def test_a_stalled_sink_is_dropped_after_its_timeout_and_holds_nobody_back_for_longer() -> None:
    stalled = StalledSink("hung", SinkSettings())
    fast = RecordingSink("fast", SinkSettings())
    reported = []
    began = time.perf_counter()
    try:
        fanout = SinkFanout([stalled, fast], buffer_frames=2, stall_timeout_s=0.5, on_failure=reported.append)
        for index in range(FRAMES):
            fanout.write(coded_frame(index))
        failures = fanout.close()
        elapsed = time.perf_counter() - began
    finally:
        stalled.release.set()  # let its thread finish
    # one wait of the timeout while the buffer was full, and at most one more at close
    assert elapsed < 0.5 * 2 + 2.0, elapsed
    assert fast.indices == list(range(FRAMES)) and fast.closed_cleanly
    assert [failure.sink for failure in failures] == ["stalled"] == [failure.sink for failure in reported]
    assert "took no frame for 0.5 s" in str(failures[0].error)

"""Stopping a run on request: from another thread, before the first frame, and by signals."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import imageio_ffmpeg
import pytest

from fifo_core import stopping
from fifo_core.api import RunConfig, StopRequest, generate
from fifo_core.plugins import default_plugins, hookimpl
from fifo_core.sampling import IterationEvent


def frames_in(path: Path) -> int:
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    return frames


def test_a_stop_requested_from_another_thread_keeps_every_frame_made(tmp_path: Path) -> None:
    stop = StopRequest()
    video = tmp_path / "out.mp4"

    def request_at_frame_30(event) -> None:
        if event.index == 29:
            threading.Thread(target=stop.set).start()

    summary = generate(RunConfig(prompt="a red circle", backbone="gaussian-ar1", sinks=[str(video)]), on_frame=request_at_frame_30, stop=stop)
    assert summary.interrupted and summary.error is None
    assert 30 <= summary.frames <= 32  # the request lands at the next frame or model step
    assert frames_in(video) == summary.frames


def test_a_stop_before_the_first_frame_ends_the_run_between_model_steps(tmp_path: Path) -> None:
    stop = StopRequest()
    steps: list[int] = []

    class StopAtThirdStep:
        @hookimpl
        def on_iteration(self, event: IterationEvent) -> None:
            steps.append(event.iteration)
            if event.iteration == 2:
                stop.set()

    plugins = default_plugins()
    plugins.register(StopAtThirdStep())
    # The clip start spends its first steps warming the queue up before any frame leaves it.
    summary = generate(RunConfig(prompt="a red circle", backbone="gaussian-ar1", sinks=[f"{tmp_path}/frames/"], start="clip"), plugins=plugins, stop=stop)
    assert summary.interrupted
    assert steps == [0, 1, 2]
    assert summary.frames == 0


def test_first_signal_only_requests_a_stop_while_sinks_are_open_and_a_second_one_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stopping, "SAME_REQUEST_S", 0.0)  # a repeat within it is a copy (tests/distributed/test_signals.py)
    stop = StopRequest()
    before = signal.getsignal(signal.SIGTERM)
    with stop.on_signals():
        with stop.deferring():
            signal.raise_signal(signal.SIGTERM)
            assert stop.is_set()
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_before_any_sink_opens_raises_at_once() -> None:
    stop = StopRequest()
    with stop.on_signals(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert not stop.is_set()


def test_a_signal_during_a_run_is_recorded_not_raised_where_it_lands(tmp_path: Path) -> None:
    """Raising KeyboardInterrupt from the handler could fire inside the sink buffer's lock and
    lose a wake-up, hanging the run for ever in SinkFanout.close (one SIGTERM in 25
    did, through the CLI, before this design)."""
    stop = StopRequest()
    handler_returned: list[int] = []

    def signal_at_frame_10(event) -> None:
        if event.index == 9:
            signal.raise_signal(signal.SIGTERM)  # runs the handler here, in the middle of the run
            handler_returned.append(event.index)

    with stop.on_signals():
        summary = generate(RunConfig(prompt="a red circle", backbone="gaussian-ar1", sinks=[str(tmp_path / "out.mp4")]), on_frame=signal_at_frame_10, stop=stop)
    assert handler_returned == [9]
    assert summary.interrupted and summary.frames == 10
    assert frames_in(tmp_path / "out.mp4") == 10

"""The RTMP sink against real servers on 127.0.0.1: ffmpeg as a one-shot RTMP listener, and
nginx with the RTMP module (published to, played back with ffmpeg, and restarted mid-run)."""

from __future__ import annotations

import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from fifo_core.errors import SinkError
from fifo_core.sink import SinkFanout, SinkSettings
from fifo_sinks import Mp4Sink, RtmpSink

from .coded_frames import HEIGHT, WIDTH, coded_frame, mean_abs_error, read_index
from .servers import free_port, read_raw_frames, start_receiver

FPS = 25.0
# H.264 at the sink's default quality (crf 20) on 64x128 test frames; measured around 2.
MEAN_ABS_ERROR_BOUND = 6.0


class SmallBufferRtmpSink(RtmpSink):
    buffer_seconds = 0.2  # 5 frames at 25 fps, so a fast generator meets the buffer at once
    initial_backoff_s = 0.1


def write_until(sink_or_fanout, first_index: int, condition, *, limit: int = 400) -> int:
    """Write coded frames from ``first_index`` until ``condition()``; the next index."""
    index = first_index
    while not condition():
        assert index - first_index < limit, "condition not reached"
        sink_or_fanout.write(coded_frame(index))
        index += 1
    return index


@pytest.mark.timeout(60)
def test_every_frame_reaches_a_listener_in_order_and_a_fast_generator_waits(listener) -> None:
    frames = 50
    sink = SmallBufferRtmpSink(listener.url, SinkSettings(fps=FPS))
    began = time.monotonic()
    with sink:
        for index in range(frames):
            sink.write(coded_frame(index))
        writing_took = time.monotonic() - began
    assert listener.wait() == 0
    received = read_raw_frames(listener.output, HEIGHT, WIDTH)

    # writes blocked: the generator was held to real time, less the buffer it could fill ahead
    assert writing_took >= (frames - sink.buffer_frames - 2) / FPS
    assert (sink.frames_written, sink.frames_sent, sink.frames_repeated, sink.frames_dropped) == (frames, frames, 0, 0)
    assert sink.connections == 1 and sink.reconnects == 0
    assert [read_index(frame) for frame in received] == list(range(frames))
    errors = [mean_abs_error(frame, coded_frame(index)) for index, frame in enumerate(received)]
    assert max(errors) < MEAN_ABS_ERROR_BOUND


@pytest.mark.timeout(60)
def test_a_short_run_that_fits_in_the_buffer_is_still_streamed_at_close(listener) -> None:
    """Every write returns at once and close() comes before the first frame is even sent:
    close() must still connect and stream the buffer."""
    sink = RtmpSink(listener.url, SinkSettings(fps=FPS))
    assert sink.buffer_frames >= 10
    with sink:
        for index in range(10):
            sink.write(coded_frame(index))
    assert listener.wait() == 0
    indices = [read_index(frame) for frame in read_raw_frames(listener.output, HEIGHT, WIDTH)]
    assert indices == list(range(10))
    assert (sink.frames_sent, sink.frames_repeated, sink.frames_dropped) == (10, 0, 0)


@pytest.mark.timeout(60)
def test_a_slow_generator_gets_its_last_frame_repeated_to_keep_the_stream_alive(listener) -> None:
    sink = SmallBufferRtmpSink(listener.url, SinkSettings(fps=FPS))
    with sink:
        for index in range(8):
            sink.write(coded_frame(index))
            time.sleep(0.2)  # 5 frame periods per frame: the stream must fill 4 of them
    assert listener.wait() == 0
    indices = [read_index(frame) for frame in read_raw_frames(listener.output, HEIGHT, WIDTH)]

    assert sink.frames_repeated >= 20
    assert sink.frames_dropped == 0
    assert sink.frames_sent == 8 + sink.frames_repeated == len(indices)
    assert sorted(set(indices)) == list(range(8)) and indices == sorted(indices), "repeats, in order, of every frame"
    seconds_streamed = len(indices) / FPS
    assert seconds_streamed == pytest.approx(8 * 0.2, abs=0.5), "the stream ran on the wall clock"


@pytest.mark.timeout(60)
def test_no_server_means_backoff_retries_dropped_frames_and_a_clear_error_at_close() -> None:
    url = f"rtmp://127.0.0.1:{free_port()}/live/secret-key"  # nothing listens there
    sink = SmallBufferRtmpSink(url, SinkSettings(fps=FPS))
    began = time.monotonic()
    for index in range(40):  # 1.6 s of video
        sink.write(coded_frame(index))
    assert time.monotonic() - began < 3.0, "an unreachable server must not hold up the generator"
    with pytest.raises(SinkError, match="never streamed") as raised:
        sink.close()
    message = str(raised.value)
    assert "Connection refused" in message and "secret-key" not in message
    # back-off 0.1, 0.2, 0.4, 0.8 s...: a handful of attempts in 1.6 s, not one per frame
    assert 2 <= sink.connections <= 6
    assert sink.reconnects == sink.connections - 1
    assert sink.frames_sent == 0
    assert sink.frames_dropped >= 40 - 5 * sink.connections  # all but the few each doomed ffmpeg read


@pytest.mark.timeout(60)
def test_a_stream_published_to_nginx_plays_back(nginx, started, tmp_path: Path) -> None:
    url = f"rtmp://127.0.0.1:{nginx.port}/live/readback"
    played = tmp_path / "played.rgb"
    started.append(start_receiver(url, played, listen=False))  # a viewer waiting for the stream
    time.sleep(0.3)  # let the player subscribe before the first frame is published
    frames = 60
    with SmallBufferRtmpSink(url, SinkSettings(fps=FPS)) as sink:
        for index in range(frames):
            sink.write(coded_frame(index))
    time.sleep(0.5)  # the last frames on their way through nginx
    nginx.stop()  # nginx keeps a viewer waiting for a new publisher; stopping it ends the player
    started[0].wait(timeout=10)
    received = read_raw_frames(played, HEIGHT, WIDTH)
    indices = [read_index(frame) for frame in received]

    assert sink.frames_sent == frames and sink.frames_dropped == 0
    assert len(indices) >= frames - 10, "the viewer saw the stream (it may join a little late)"
    assert indices == list(range(indices[0], indices[0] + len(indices)))
    assert max(mean_abs_error(frame, coded_frame(index)) for index, frame in zip(indices, received)) < MEAN_ABS_ERROR_BOUND


@pytest.mark.timeout(90)
def test_a_server_restart_is_survived_and_an_mp4_beside_it_holds_every_frame(nginx, started, tmp_path: Path) -> None:
    url = f"rtmp://127.0.0.1:{nginx.port}/live/restart"
    video = tmp_path / "video.mp4"
    rtmp = SmallBufferRtmpSink(url, SinkSettings(fps=FPS))
    mp4 = Mp4Sink(str(video), SinkSettings(fps=FPS))
    played = tmp_path / "played.rgb"
    with SinkFanout([rtmp, mp4], buffer_frames=4) as fanout:
        index = write_until(fanout, 0, lambda: rtmp.frames_sent >= 20)
        nginx.stop()
        stopped_at = index
        # the sink notices the drop and tries again (refused: nothing listens now)
        index = write_until(fanout, index, lambda: rtmp.connections >= 2)
        outage_ends = time.monotonic() + 0.5
        index = write_until(fanout, index, lambda: time.monotonic() > outage_ends)
        nginx.start()
        started.append(start_receiver(url, played, listen=False))
        sent_at_restart = rtmp.frames_sent
        restarted_at = index
        index = write_until(fanout, index, lambda: rtmp.frames_sent >= sent_at_restart + 30)
    time.sleep(0.5)
    nginx.stop()
    started[0].wait(timeout=10)

    print(rtmp.summary(), *rtmp.connection_errors, sep="\n")
    assert fanout.failures == []
    assert rtmp.reconnects >= 1 and rtmp.connection_errors, "the drop was noticed and a new connection made"
    assert rtmp.frames_dropped > 0, "frames due while the server was down were dropped, not queued up"
    assert rtmp.frames_written == index
    count, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert count == index, "the MP4 sink lost nothing while the stream was down"
    played_indices = [read_index(frame) for frame in read_raw_frames(played, HEIGHT, WIDTH)]
    assert len(played_indices) >= 20, "a viewer after the restart saw the stream again"
    assert min(played_indices) >= stopped_at - 4  # pipe and buffer at the time of the drop
    assert played_indices[-1] >= restarted_at
    assert played_indices == sorted(played_indices)

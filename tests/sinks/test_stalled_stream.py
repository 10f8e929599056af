"""Issue #13, item 14: an RTMP server that accepts the connection and then reads nothing must
not hold the generator back for more than the stream's buffer: the stream drops the frames that
fall due, as it does with no connection at all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from fifo_core.sink import SinkSettings
from fifo_sinks import RtmpSink

from .coded_frames import coded_frame

FPS = 25.0


class StalledServerSink(RtmpSink):
    buffer_seconds = 0.2
    stall_timeout_s = 4.0  # 10 s in real use; the test only needs it longer than the run
    initial_backoff_s = 0.1
    close_timeout_s = 1.0


@pytest.fixture
def stalled_server() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts connections and never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                held.append(connection)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


@pytest.mark.timeout(60)
def test_a_stalled_server_holds_the_generator_back_no_more_than_real_time(stalled_server: int) -> None:
    sink = StalledServerSink(f"rtmp://127.0.0.1:{stalled_server}/live/key", SinkSettings(fps=FPS))
    frames = 75  # 3 s of video
    began = time.monotonic()
    for index in range(frames):
        sink.write(coded_frame(index))
    writing_took = time.monotonic() - began
    try:
        sink.close()
    except Exception:  # noqa: BLE001 - nothing reached the server, which close() reports
        pass
    assert writing_took < frames / FPS + 1.5, f"writes were held {writing_took:.1f}s by a stalled server"
    assert sink.frames_dropped > 0

"""Does a live run stream at its frame rate while the MP4 beside it keeps every frame?

Starts an RTMP receiver on loopback (``ffmpeg -listen 1``, decoding to raw frames), runs
``fifo-diffusion``'s ``generate`` with an RTMP sink and an MP4 sink for ``--seconds`` of video,
and prints: frames generated, frames the MP4 holds, frames received, the receive rate measured
over the stream after its first ``--settle`` seconds (the receiver's probing) and over each
10-second stretch, and its error against the target fps.

    python benchmarks/live_stream.py                     # default backbone, 70 s of video: 60 measured
    python benchmarks/live_stream.py --seconds 20 --backbone gaussian-ar1
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import imageio_ffmpeg

from fifo_core.api import RunConfig, generate
from fifo_core.plugins import default_plugins


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Receiver:
    """An RTMP server on loopback that records when each decoded frame arrives."""

    def __init__(self, port: int, width: int, height: int) -> None:
        self.frame_bytes = width * height * 3
        self.arrivals: list[float] = []
        self.process = subprocess.Popen(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-probesize", "65536", "-analyzeduration", "500000",
             "-listen", "1", "-i",
             f"rtmp://127.0.0.1:{port}/live/benchmark", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            stdout=subprocess.PIPE,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            chunk = self.process.stdout.read(self.frame_bytes)
            if len(chunk) < self.frame_bytes:
                return
            self.arrivals.append(time.perf_counter())

    def wait(self, timeout: float = 30) -> None:
        self.thread.join(timeout)
        if self.process.poll() is None:
            self.process.kill()


def rate(arrivals: list[float]) -> float:
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="backbone name (default: the default backbone)")
    parser.add_argument("--prompt", default="a red circle moving left")
    parser.add_argument("--seconds", type=float, default=70.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of the stream's start not measured")
    args = parser.parse_args()

    args.backbone = args.backbone or default_plugins().default_backbone()
    defaults = default_plugins().backbone(args.backbone).defaults
    fps = defaults.fps
    frames = round(args.seconds * fps)
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "live.mp4"
        receiver = Receiver(port, defaults.width + defaults.width % 2, defaults.height + defaults.height % 2)
        time.sleep(1.0)  # let the listener bind before the sink connects
        began = time.perf_counter()
        summary = generate(RunConfig(prompt=args.prompt, backbone=args.backbone, frames=frames,
                                     sinks=[f"rtmp://127.0.0.1:{port}/live/benchmark", str(video)]))
        wall = time.perf_counter() - began
        receiver.wait()
        in_mp4, _ = imageio_ffmpeg.count_frames_and_secs(str(video))

    arrivals = receiver.arrivals
    # the receiver buffers while it probes the stream, then releases a burst: measure after it
    settled = [t for t in arrivals if t >= arrivals[0] + args.settle] if arrivals else []
    overall = rate(settled)
    stretches = []
    start = settled[0] if settled else 0.0
    while settled and start + 10 <= settled[-1]:
        inside = [t for t in settled if start <= t < start + 10]
        stretches.append(len(inside) / 10)
        start += 10
    print(f"backbone {args.backbone}, target {fps:g} fps, {args.seconds:g} s of video, wall {wall:.1f} s")
    print(f"| frames generated | frames in MP4 | frames received | receive rate after {args.settle:g} s (fps) | error vs target |")
    print("|---|---|---|---|---|")
    print(f"| {summary.frames} | {in_mp4} | {len(arrivals)} | {overall:.3f} | {100 * (overall / fps - 1):+.2f}% |")
    if stretches:
        print("receive rate per 10 s stretch: " + ", ".join(f"{value:.2f}" for value in stretches))
    for failure in summary.sink_failures:
        print(f"sink failure: {failure.describe()}")


if __name__ == "__main__":
    main()

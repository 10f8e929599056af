"""Shared by the resume tests: frames read back, runs in a subprocess killed with SIGKILL, and
fake backbones (a temporal decoder that keeps state between latents, a model output that turns
NaN at a chosen call)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fifo_core.backbone import BackboneDefaults
from fifo_core.decoding import ChunkedClipDecoder
from fifo_core.plugins import hookimpl

from core.fakes import RecordingBackbone  # tests/ is on sys.path (pytest prepends it for the test packages)

CLI = [sys.executable, "-m", "fifo_core.cli"]


def png_frames(folder: Path) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(path)) for path in sorted(Path(folder).glob("frame_*.png"))]


def mp4_frames(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]


def environment() -> dict[str, str]:
    return dict(os.environ, FIFO_DIFFUSION_PLUGINS="shapes,gaussian,sinks,timeline", OMP_NUM_THREADS="1")


def processes_naming(text: str) -> list[int]:
    """Process ids whose command line contains ``text`` (the ffmpeg writing an output, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while processes_naming(text) and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds (fail if it ends first)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read() if process.stderr else ''}"
        assert time.monotonic() < deadline, "the run made too few frames in time"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def smooth_clip(latents: torch.Tensor) -> torch.Tensor:
    """A temporal 'VAE': latents ``'c t h w'`` to video ``'3 T h w'``, ``T = 1 + 3 (t - 1)``, each
    frame mixing the latents around it, so a decoder restarted without its context decodes
    differently."""
    first = latents[:1]
    video = torch.nn.functional.interpolate(first[None], size=(1 + 3 * (latents.shape[1] - 1), *latents.shape[2:]), mode="trilinear")[0]
    return torch.tanh(video.expand(3, -1, -1, -1))


class TemporalBackbone(RecordingBackbone):
    """The fake backbone with a decoder that holds latents between calls (as LTX-Video's and
    Open-Sora Plan's do): 3 frames per latent, one latent of context and one of lookahead."""

    name = "fake-temporal"

    def __init__(self) -> None:
        super().__init__(frames_per_latent=3, decoder_factory=lambda: ChunkedClipDecoder(smooth_clip, per_latent=3, context=1, lookahead=1, chunk=2))
        self.defaults = DEFAULTS_TEMPORAL


DEFAULTS_TEMPORAL = BackboneDefaults(height=4, width=4, window=4, partitions=2, frames_per_latent=3, sampler="ddim", eta=1.0)
DEFAULTS_FAKE = BackboneDefaults(height=4, width=4, window=4, partitions=2, sampler="ddim", eta=1.0)


class PoisonedBackbone(RecordingBackbone):
    """The fake backbone whose ``poison_call``-th model call returns NaN in one frame; set
    ``poison_call`` to ``None`` for a healthy model."""

    name = "fake-poisoned"

    def __init__(self, poison_call: int | None = 9) -> None:
        super().__init__()
        self.defaults = DEFAULTS_FAKE
        self.poison_call = poison_call

    def predict(self, latents, timesteps, conditioning):
        output = super().predict(latents, timesteps, conditioning)
        if self.poison_call is not None and len(self.calls) == self.poison_call:
            output = output.clone()
            output[0, :, -1] = float("nan")  # the last frame of the first window
        return output


class FakeBackbones:
    """Registers the fakes above (``fake-temporal``, ``fake-poisoned``)."""

    def __init__(self, poisoned: PoisonedBackbone | None = None) -> None:
        self.poisoned = poisoned

    @hookimpl
    def register_backbones(self, register):
        register("fake-temporal", TemporalBackbone, defaults=DEFAULTS_TEMPORAL)
        register("fake-poisoned", lambda: self.poisoned or PoisonedBackbone(), defaults=DEFAULTS_FAKE)

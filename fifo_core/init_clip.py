"""Continuing a given clip or image (``--init-video``, ``--init-image``): read it, encode it.

The frames are read at the video's size (scaled with ffmpeg, or Pillow for an image) and the
backbone's optional ``encode`` turns the last of them into latents ``'t c h w'``;
:func:`fifo_core.starts.continuation_queue` fills the queue from those, so the new video starts
where the clip ends. A backbone without ``encode`` (no image encoder: the Gaussian backbone, or a
model whose VAE encoder is not loaded) cannot continue a clip and says so before anything runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from fifo_core.backbone import Backbone
from fifo_core.config import InitClip
from fifo_core.errors import ConfigError


def check_init_file(init: InitClip) -> None:
    """Refuse a missing or unreadable file before anything is loaded or created."""
    path = Path(init.path)
    flag = "--" + init.kind.replace("_", "-")
    if not path.is_file():
        raise ConfigError(f"{flag} {init.path!r} is not a file; give the {init.kind.removeprefix('init_')} to continue", field=init.kind)
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise ConfigError(f"cannot read {flag} {init.path!r}: {error.strerror}", field=init.kind) from None


def can_encode(backbone: Backbone) -> bool:
    return callable(getattr(backbone, "encode", None))


def check_can_encode(backbone: Backbone, name: str, init: InitClip) -> None:
    if not can_encode(backbone):
        raise ConfigError(
            f"backbone {name!r} has no image encoder, so it cannot continue a clip (--{init.kind.replace('_', '-')}); "
            "backbones that can: fifo-shapes, the VideoCrafter and diffusers backbones (zeroscope, ModelScope, "
            "AnimateDiff, Latte, Wan, LTX-Video)",
            field=init.kind,
        )


def init_frames(init: InitClip, height: int, width: int) -> Iterator[np.ndarray]:
    """The clip's frames ``'h w 3'`` uint8, scaled to ``height x width``, in order."""
    if init.kind == "init_image":
        yield _read_image(init.path, height, width)
        return
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(init.path, output_params=["-vf", f"scale={width}:{height}:flags=bicubic"])
        next(reader)  # the header
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
    except (OSError, RuntimeError, StopIteration) as error:
        raise ConfigError(
            f"cannot read the video {init.path!r} ({' '.join(str(error).split())[:200]}); give a video file ffmpeg reads (MP4, WebM, ...)",
            field=init.kind,
        ) from None


def _read_image(path: str, height: int, width: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BICUBIC)
            return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as error:
        raise ConfigError(f"cannot read the image {path!r} ({error}); give a PNG or JPEG file", field="init_image") from None


def last_frames(init: InitClip, height: int, width: int, count: int) -> list[np.ndarray]:
    """The clip's last ``count`` frames (all of them when shorter); read once, only those kept."""
    frames = list(deque(init_frames(init, height, width), maxlen=count))
    if not frames:
        raise ConfigError(f"{init.path!r} holds no frames; give a video with at least one frame", field=init.kind)
    return frames


def encode_init(backbone: Backbone, init: InitClip, height: int, width: int, latents_needed: int) -> torch.Tensor:
    """Latents ``'t c h w'`` of the clip's end: its last frames, enough for ``latents_needed``
    latents (a temporally compressing VAE needs more frames per latent)."""
    count = backbone.defaults.first_frame_of_latent(latents_needed)  # frames of latents 0 .. latents_needed - 1
    frames = last_frames(init, height, width, max(count, 1))
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1  # 't 3 h w' in [-1, 1]
    with torch.no_grad():
        latents = backbone.encode(video)  # type: ignore[attr-defined]
    expected = backbone.latent_shape(height, width)
    if latents.ndim != 4 or tuple(latents.shape[1:]) != tuple(expected):
        raise ConfigError(f"the backbone's encode returned shape {tuple(latents.shape)}, expected (t, {', '.join(map(str, expected))})")
    return latents.float().cpu()

"""The ``fifo-shapes`` backbones: the project's own small text-to-video models (docs/default-model.md).

* ``fifo-shapes``, the default: an ordinary video diffusion model (no tracker); every frame of its
  videos comes from its noise predictions inside FIFO's windows.
* ``fifo-shapes-tracker``: the earlier default, kept for comparison. After its first clip it does
  not denoise new content: each window's cleanest clean estimate, snapped to the palette, is moved
  by a learned motion tracker (model.py), so its videos show a copy of the first clip moving.

Both run in pixel space: a latent frame is the world's ``'3 32 32'`` image in ``[-1, 1]``, and the
decoder scales it up by whole pixels (``upscale``, 4 by default, so 128x128 video). The weights
ship with the package (``weights/`` and ``weights/tracker/``), so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults, Row, StatelessDecoder, to_uint8_frame
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule
from fifo_core.starts import ClipStart

from fifo_shapes.model import ShapesModel, ShapesModelConfig, cosine_alphas_cumprod
from fifo_shapes.world import vocabulary

WEIGHTS_DIR = Path(__file__).parent / "weights"
TRACKER_WEIGHTS_DIR = WEIGHTS_DIR / "tracker"
WEIGHTS_FILE = "shapes.safetensors"
CONFIG_FILE = "config.json"
UPSCALE = 4
DEFAULT_THREADS = 1

# Speed decides n and guidance: every output frame costs 2 * n windows of f frames with lookahead
# (twice that with guidance), and the model must stream at least 8 frames/s on two CPU cores
# (benchmarks/realtime.py). n = 2 with f = 8 gives S = 16 levels; n = 2 with lookahead also
# agreed best with the prompts of the variants measured (docs/default-model.md). The queue starts
# from one ordinary clip, sampled with guidance 3 (once, so it costs no speed): it sets the
# colour and shape the queue continues.
DEFAULTS = BackboneDefaults(
    height=32 * UPSCALE,
    width=32 * UPSCALE,
    window=8,
    partitions=2,
    lookahead=True,
    sampler="ddim",
    eta=0.0,
    guidance_scale=1.0,
    fps=8.0,
    timestep_spacing="trailing",
    start=ClipStart(guidance_scale=3.0),
)


class ShapesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(default=None, description="folder with shapes.safetensors and config.json; the shipped weights when unset")
    device: str = Field(default="cpu", description="torch device")
    upscale: int = Field(default=UPSCALE, ge=1, description="video pixels per world pixel along each side")
    # One thread by default: on a shared 2-core machine two threads collapsed whenever anything
    # else ran (0.5 to 14 frames/s with the tracker model, 2.0 to 19.1 with today's), while one
    # thread held steady and leaves a core to the MP4 encoder (docs/performance.md,
    # docs/default-model.md).
    threads: int | None = Field(default=DEFAULT_THREADS, ge=1, description="CPU threads for torch; unset (null) keeps torch's default, one per core")


def load_model(folder: str | Path | None = None, device: torch.device | str = "cpu") -> tuple[ShapesModel, dict]:
    """The model and its metadata (``config.json``) from ``folder`` (the shipped weights by default)."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        raise ConfigError(
            f"no shapes model in {str(folder)!r}: expected {WEIGHTS_FILE} and {CONFIG_FILE} there; "
            "train one with `python -m fifo_shapes.train --out FOLDER` or leave the weights option unset",
            field="backbone_options",
        )
    metadata = json.loads(config_path.read_text(encoding="utf-8"))
    state = load_file(str(weights))
    model = ShapesModel(ShapesModelConfig(**metadata["model"]), token_ids=state["text.known_ids"].tolist())
    model.load_state_dict(state)
    return model.to(device).eval().requires_grad_(False), metadata


_KNOWN_WORDS = frozenset(vocabulary())


def unknown_words(prompt: str) -> list[str]:
    """The words of ``prompt`` outside the shapes grammar's vocabulary, in order, each once."""
    unknown: list[str] = []
    for word in re.findall(r"[a-z]+", prompt.lower()):
        if word not in _KNOWN_WORDS and word not in unknown:
            unknown.append(word)
    return unknown


def noise_schedule(config: ShapesModelConfig) -> DiscreteSchedule:
    return DiscreteSchedule(cosine_alphas_cumprod(config.num_train_timesteps), prediction_type="v_prediction")


class ShapesBackbone:
    """Backbone protocol over :class:`~fifo_shapes.model.ShapesModel`; conditioning is a prompt
    embedding ``'e'``. ``weights`` unset loads :attr:`shipped_weights`."""

    defaults = DEFAULTS
    name = "fifo-shapes"
    shipped_weights = WEIGHTS_DIR

    def __init__(self, weights: str | None = None, device: str = "cpu", upscale: int = UPSCALE, threads: int | None = DEFAULT_THREADS, *, model: ShapesModel | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if model is not None else load_model(weights or self.shipped_weights, self.device)[0]
        self.schedule = noise_schedule(self.model.config)
        self.upscale = upscale

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        step = 4 * self.upscale  # the U-Net halves 32 twice (pixel unshuffle, one down level)
        if height != width:
            raise ConfigError(
                f"fifo-shapes makes square video only (its world wraps round a square), got {width}x{height}; "
                f"pass equal --height and --width, e.g. {32 * self.upscale}",
                field="height",
            )
        if height % step or width % step:
            raise ConfigError(
                f"height and width must be multiples of {step} for fifo-shapes with upscale {self.upscale}, got {width}x{height}; "
                f"the model was trained on {32 * self.upscale}x{32 * self.upscale}, the default",
                field="height",
            )
        return (self.model.config.channels, height // self.upscale, width // self.upscale)

    @torch.inference_mode()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        unknown = unknown_words(prompt)
        if unknown:
            # Every unknown word shares one embedding row, so the model cannot follow it.
            warnings.warn(
                f"{self.name} does not know the words {', '.join(repr(word) for word in unknown)} in {prompt!r}; it was trained on "
                "'a COLOUR SHAPE MOTION [on a BACKGROUND background]' (docs/default-model.md lists the words)",
                UserWarning,
                stacklevel=2,
            )
        return self.model.text.encode([prompt])[0]

    @torch.inference_mode()
    def predict(
        self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[torch.Tensor], *, rows: Sequence[Row] | None = None
    ) -> torch.Tensor:
        """With the tracker, both halves of a guided window must be denoised in the same frame of
        reference, or their difference mixes two placements of the shape: the tracker reads every
        row with its window's prompt (``rows``, from the core), which knows the motion words."""
        prompts = torch.stack(list(conditioning)).to(self.device)
        latents, timesteps = latents.to(self.device, torch.float32), timesteps.to(self.device)
        tracker = self.model.denoiser.tracker
        if tracker is None:
            return self.model.denoiser(latents, timesteps, prompts)
        window_prompts = prompts if rows is None else torch.stack([row.prompt for row in rows]).to(self.device)
        offsets = tracker.offsets(latents, timesteps, window_prompts)
        return self.model.denoiser(latents, timesteps, prompts, offsets, share_clean=True)

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        image = latent.float().clamp(-1, 1)
        if self.upscale > 1:
            image = image.repeat_interleave(self.upscale, 1).repeat_interleave(self.upscale, 2)
        return to_uint8_frame(image)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Video frames ``'t 3 H W'`` in ``[-1, 1]`` to latents ``'t 3 h w'`` (``--init-video``):
        the model works on pixels, so encoding is the decoder's upscale undone (each world pixel
        the mean of its ``upscale x upscale`` block)."""
        image = frames.to(self.device, torch.float32)
        if self.upscale > 1:
            image = torch.nn.functional.avg_pool2d(image, self.upscale)
        return image.clamp(-1, 1)


class ShapesTrackerBackbone(ShapesBackbone):
    """``fifo-shapes-tracker``: the earlier default model with its motion tracker
    (``weights/tracker/``); after the first clip its frames are copies moved by the tracker, not
    new denoising (docs/default-model.md)."""

    name = "fifo-shapes-tracker"
    shipped_weights = TRACKER_WEIGHTS_DIR

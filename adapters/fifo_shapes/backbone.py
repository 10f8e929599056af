"""The ``fifo-shapes`` backbone: the project's own small text-to-video model (docs/default-model.md).

It runs in pixel space: a latent frame is the world's ``'3 32 32'`` image in ``[-1, 1]``, and the
decoder scales it up by whole pixels (``upscale``, 4 by default, so 128x128 video). The weights
ship with the package (``weights/``), so nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import BackboneDefaults, StatelessDecoder, to_uint8_frame
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule

from fifo_shapes.model import ShapesModel, ShapesModelConfig, cosine_alphas_cumprod

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_FILE = "shapes.safetensors"
CONFIG_FILE = "config.json"
UPSCALE = 4
DEFAULT_THREADS = 1

# Speed decides n and guidance: every output frame costs 2 * n windows of f frames with lookahead
# (twice that with guidance), and the model must stream at least 8 frames/s on two CPU cores
# (benchmarks/realtime.py). n = 2 with f = 8 gives S = 16 levels. The queue starts from one
# ordinary clip, sampled with guidance 3 (once, so it costs no speed): every later frame is that
# clip's last frame moved by the tracker's steps (model.py), so the first clip decides the
# colour and shape of the whole video, and unguided about one first clip in four had them wrong
# (with an earlier tracker; docs/default-model.md).
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
    start="clip",
    start_guidance_scale=3.0,
)


class ShapesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(default=None, description="folder with shapes.safetensors and config.json; the shipped weights when unset")
    device: str = Field(default="cpu", description="torch device")
    upscale: int = Field(default=UPSCALE, ge=1, description="video pixels per world pixel along each side")
    # One thread by default: measured on a shared 2-core machine, one thread made 3.7 to 8.5
    # frames/s and two threads 0.5 to 14, collapsing whenever anything else ran, and one thread
    # leaves a core to the MP4 encoder (README, docs/performance.md).
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


def noise_schedule(config: ShapesModelConfig) -> DiscreteSchedule:
    return DiscreteSchedule(cosine_alphas_cumprod(config.num_train_timesteps), prediction_type="v_prediction")


def shared_offsets(latents: torch.Tensor, timesteps: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Offsets ``'b f 2'`` where every row that repeats an earlier row's latents and timesteps
    takes that row's offsets.

    Classifier-free guidance sends each window twice, prompted rows first, then the negative
    prompt's; both halves must be denoised in the same frame of reference, or their difference
    mixes two placements of the shape. The prompted row's tracker knows the motion words, so
    its offsets are the ones kept.
    """
    offsets = offsets.clone()
    for row in range(1, latents.shape[0]):
        for earlier in range(row):
            if torch.equal(latents[row], latents[earlier]) and torch.equal(timesteps[row], timesteps[earlier]):
                offsets[row] = offsets[earlier]
                break
    return offsets


class ShapesBackbone:
    """Backbone protocol over :class:`~fifo_shapes.model.ShapesModel`; conditioning is a prompt
    embedding ``'e'``."""

    defaults = DEFAULTS

    def __init__(self, weights: str | None = None, device: str = "cpu", upscale: int = UPSCALE, threads: int | None = DEFAULT_THREADS, *, model: ShapesModel | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if model is not None else load_model(weights, self.device)[0]
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
        return self.model.text.encode([prompt])[0]

    @torch.inference_mode()
    def predict(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[torch.Tensor]) -> torch.Tensor:
        prompts = torch.stack(list(conditioning)).to(self.device)
        latents, timesteps = latents.to(self.device, torch.float32), timesteps.to(self.device)
        tracker = self.model.denoiser.tracker
        if tracker is None:
            return self.model.denoiser(latents, timesteps, prompts)
        offsets = shared_offsets(latents, timesteps, tracker.offsets(latents, timesteps, prompts))
        return self.model.denoiser(latents, timesteps, prompts, offsets, share_clean=True)

    def decode(self, latent: torch.Tensor) -> np.ndarray:
        image = latent.float().clamp(-1, 1)
        if self.upscale > 1:
            image = image.repeat_interleave(self.upscale, 1).repeat_interleave(self.upscale, 2)
        return to_uint8_frame(image)

    def frame_decoder(self) -> StatelessDecoder:
        return StatelessDecoder(self.decode)

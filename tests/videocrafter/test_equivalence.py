"""Numerical equivalence with VideoCrafter's own code (and FIFO-Diffusion's reference U-Net).

``data/reference_tiny.safetensors`` holds what the reference modules computed (see
``make_reference_data.py``) for tiny configurations whose weights and inputs are regenerated here
from seeds (``seeded.py``); the reference's key layout was checked to be exactly ours when the data
was made. Tolerance: relative error of the whole tensor (``fifo_core.testing.relative_error``) below 1e-5 in float32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fifo_core.steps import FrameLevels, ddim_step
from fifo_core.testing import RECORDED_OUTPUT_TOLERANCE, relative_error
from fifo_videocrafter.checkpoint import UNET_PREFIX, load_modules
from fifo_videocrafter.config import TINY_VIDEOCRAFTER1, TINY_VIDEOCRAFTER2, VIDEOCRAFTER2
from fifo_videocrafter.schedule import checkpoint_buffers, noise_schedule
from fifo_videocrafter.unet import UNet3D

from .seeded import seeded_state_dict, tiny_checkpoint_state, uniform

DATA = Path(__file__).parent / "data" / "reference_tiny.safetensors"
TOLERANCE = RECORDED_OUTPUT_TOLERANCE


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(DATA))


@pytest.fixture(scope="module")
def tiny_vc2():
    return load_modules(tiny_checkpoint_state(TINY_VIDEOCRAFTER2, seed=0), TINY_VIDEOCRAFTER2, "tiny")


def unet_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return uniform((2, 4, 4, 8, 8), "input.x"), uniform((2, 77, 32), "input.context")


def test_reference_data_is_small() -> None:
    assert DATA.stat().st_size < 200_000


@torch.no_grad()
def test_unet_matches_videocrafter_with_one_timestep_per_clip(reference, tiny_vc2) -> None:
    x, context = unet_inputs()
    timesteps = reference["unet.vc2.timesteps"]
    ours = tiny_vc2.unet(x, timesteps, context, fps=torch.full((2,), 8.0))
    assert relative_error(ours, reference["unet.vc2.output"]) < TOLERANCE


@torch.no_grad()
def test_per_frame_timesteps_match_the_fifo_reference_unet(reference, tiny_vc2) -> None:
    x, context = unet_inputs()
    timesteps = reference["unet.vc2_per_frame.timesteps"][None]  # 'b f'
    ours = tiny_vc2.unet(x[:1], timesteps, context[:1], fps=torch.full((1,), 8.0))
    assert relative_error(ours, reference["unet.vc2_per_frame.output"]) < TOLERANCE


@torch.no_grad()
def test_videocrafter1_unet_layout_matches(reference) -> None:
    unet = UNet3D(TINY_VIDEOCRAFTER1.unet)
    shapes = {key: tuple(value.shape) for key, value in unet.state_dict().items()}
    unet.load_state_dict(seeded_state_dict(shapes, seed=1), strict=True)
    x, context = unet_inputs()
    ours = unet(x, reference["unet.vc1.timesteps"], context)
    assert relative_error(ours, reference["unet.vc1.output"]) < TOLERANCE


@torch.no_grad()
def test_vae_decoder_matches(reference, tiny_vc2) -> None:
    z = uniform((1, 4, 8, 8), "input.z")
    ours = tiny_vc2.vae.decode(z / TINY_VIDEOCRAFTER2.vae.scale_factor)
    assert relative_error(ours, reference["vae.output"]) < TOLERANCE


@torch.no_grad()
def test_text_encoder_matches_open_clip_penultimate_layer(reference, tiny_vc2) -> None:
    prompts = ["a red panda eating bamboo, 4k", ""]
    assert torch.equal(tiny_vc2.text.tokenize(prompts), reference["text.tokens"])
    ours = tiny_vc2.text.encode(prompts)
    assert relative_error(ours, reference["text.output"]) < TOLERANCE


def test_schedule_buffers_are_videocrafter2s(reference) -> None:
    ours = checkpoint_buffers(VIDEOCRAFTER2.schedule)
    theirs = {key.removeprefix("schedule."): value for key, value in reference.items() if key.startswith("schedule.")}
    assert set(ours) == set(theirs)
    for name in ours:
        assert relative_error(ours[name], theirs[name]) < TOLERANCE, name


@pytest.mark.parametrize("index", [63, 30, 0])
def test_core_ddim_step_with_the_schedule_matches_videocrafters_scaled_ddim(reference, index: int) -> None:
    """VideoCrafter's DDIM divides x0 by s_t and multiplies by s_prev; the core does the same
    through ``signal = sqrt(abar) * s``. Its last step goes to t = 0 (abar_0, s_0 = 1)."""
    schedule = noise_schedule(VIDEOCRAFTER2.schedule)
    grid = reference["ddim.timesteps"]
    now_t, after_t = int(grid[index]), (int(grid[index - 1]) if index else 0)

    def levels(t: int) -> FrameLevels:
        abar = schedule.alphas_cumprod[t].reshape(1)
        return FrameLevels(signal=abar.sqrt() * schedule.signal_scale[t], noise=(1 - abar).sqrt(), alpha_bar=abar)

    x = uniform((1, 4, 2, 4, 4), f"ddim.x.{index}")[0].transpose(0, 1)  # frames first: 'k c h w'
    eps = uniform((1, 4, 2, 4, 4), f"ddim.eps.{index}")[0].transpose(0, 1)
    noise = reference[f"ddim.{index}.noise"][0].transpose(0, 1)
    frames = x.shape[0]

    def per_frame(level: FrameLevels) -> FrameLevels:
        return FrameLevels(*(value.expand(frames) for value in (level.signal, level.noise, level.alpha_bar)))

    ours = ddim_step(x, eps, per_frame(levels(now_t)), per_frame(levels(after_t)), "epsilon", eta=1.0, noise=noise)
    assert relative_error(ours, reference[f"ddim.{index}.output"][0].transpose(0, 1)) < TOLERANCE


def test_reference_compatible_switch_drops_the_scale() -> None:
    assert noise_schedule(VIDEOCRAFTER2.schedule, ignore_signal_scale=True).signal_scale is None
    scaled = noise_schedule(VIDEOCRAFTER2.schedule)
    assert scaled.signal_scale is not None
    assert float(scaled.signal_scale[0]) == 1.0 and abs(float(scaled.signal_scale[399]) - 0.7) < 1e-12
    assert torch.all(scaled.signal_scale[400:] == 0.7)


def test_unet_keys_in_the_checkpoint_have_the_original_prefix() -> None:
    state = tiny_checkpoint_state(TINY_VIDEOCRAFTER2)
    assert any(key.startswith(UNET_PREFIX) and "temopral_conv" in key for key in state)

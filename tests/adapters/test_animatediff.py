"""AnimateDiff (UNetMotionModel from an SD 1.5 U-Net + MotionAdapter): loading and the shim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.schedule import DiscreteSchedule

from fifo_core.testing import BackboneConformance

VIDEO = (16, 16)


def _options(folder: Path, **extra) -> dict:
    return {"model": str(folder), "motion_adapter": None, "device": "cpu", **extra}


@pytest.fixture(scope="module")
def backbone(animatediff_folder: Path):
    return load_backbone("animatediff", _options(animatediff_folder))


@pytest.fixture(scope="module")
def original_unet(animatediff_folder: Path):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    unet = UNet2DConditionModel.from_pretrained(animatediff_folder, subfolder="unet")
    adapter = MotionAdapter.from_pretrained(animatediff_folder, subfolder="motion_adapter")
    return UNetMotionModel.from_unet2d(unet, adapter).eval()


class TestAnimateDiffConformance(BackboneConformance):
    video_size = VIDEO


def test_builds_a_motion_unet_from_the_sd_unet_and_the_adapter(backbone) -> None:
    assert type(backbone.unet).__name__ == "UNetMotionModel"


def test_shim_gives_exactly_the_original_output_when_frames_share_a_timestep(backbone, original_unet) -> None:
    latents = torch.randn(2, 4, 6, 8, 8, generator=torch.Generator().manual_seed(1))
    conditioning = [backbone.encode_prompt("a red circle"), backbone.encode_prompt("a dog running")]
    per_row = torch.tensor([731.0, 42.0])
    states = torch.cat(conditioning).repeat_interleave(6, dim=0)  # the pipeline's per-frame prompt states
    with torch.no_grad():
        expected = original_unet(latents, per_row, encoder_hidden_states=states, return_dict=False)[0]
    assert torch.equal(backbone.predict(latents, per_row[:, None].expand(2, 6), conditioning), expected)
    diagonal = backbone.predict(latents, torch.tensor([[731.0, 700, 650, 600, 550, 500], [42.0] * 6]), conditioning)
    assert not torch.allclose(diagonal[0], expected[0], atol=1e-6)
    assert torch.equal(diagonal[1], expected[1])


def test_schedule_defaults_to_animatediffs_linear_betas(backbone, animatediff_folder: Path) -> None:
    assert torch.equal(backbone.schedule.alphas_cumprod, DiscreteSchedule.linear(0.00085, 0.012).alphas_cumprod)
    own = load_backbone("animatediff", _options(animatediff_folder, beta_schedule="model"))
    assert torch.equal(own.schedule.alphas_cumprod, DiscreteSchedule.scaled_linear(0.00085, 0.012).alphas_cumprod)


def test_a_saved_animatediff_pipeline_loads_its_motion_unet_directly(backbone, animatediff_folder: Path, tmp_path: Path) -> None:
    """An AnimateDiffPipeline folder: ``unet`` is a UNetMotionModel, no separate adapter needed."""
    import shutil

    shutil.copytree(animatediff_folder, tmp_path / "pipeline")
    shutil.rmtree(tmp_path / "pipeline" / "unet")
    shutil.rmtree(tmp_path / "pipeline" / "motion_adapter")
    backbone.unet.save_pretrained(tmp_path / "pipeline" / "unet")
    saved = load_backbone("animatediff", _options(tmp_path / "pipeline"))
    latents = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    timesteps = torch.tensor([[100.0, 200, 300, 400]])
    conditioning = [backbone.encode_prompt("a cat")]
    assert type(saved.unet).__name__ == "UNetMotionModel"
    torch.testing.assert_close(saved.predict(latents, timesteps, conditioning), backbone.predict(latents, timesteps, conditioning))


def test_fifo_end_to_end_through_the_python_api(animatediff_folder: Path) -> None:
    config = RunConfig(
        prompt="a dog running on the beach", backbone="animatediff", backbone_options=_options(animatediff_folder),
        height=VIDEO[0], width=VIDEO[1], window=4, partitions=1, guidance_scale=2.0, frames=3, seed=0,
    )
    frames = list(iter_frames(config))
    assert len(frames) == 3 and all(f.shape == (*VIDEO, 3) and f.dtype == np.uint8 for f in frames)

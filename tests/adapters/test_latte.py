"""Latte-1 (LatteTransformer3DModel): the per-frame adaLN-single shim, epsilon of a learned-variance
output, the discrete schedule, end to end through the Python API and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.cli import main
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule

from fifo_core.testing import BackboneConformance

VIDEO = (16, 16)  # the tiny VAE halves each side: latents 4 x 8 x 8, 4 x 4 patches per frame
FRAMES = 4  # the tiny model's video_length


def _options(folder: Path, **extra) -> dict:
    return {"model": str(folder), "max_sequence_length": 16, "device": "cpu", **extra}


@pytest.fixture(scope="module")
def backbone(latte_folder: Path):
    return load_backbone("latte-1", _options(latte_folder))


@pytest.fixture(scope="module")
def original(latte_folder: Path):
    """The same weights in a transformer without hooks: the model as diffusers ships it."""
    from diffusers import LatteTransformer3DModel

    return LatteTransformer3DModel.from_pretrained(latte_folder, subfolder="transformer").eval()


def _latents(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 4, FRAMES, 8, 8, generator=torch.Generator().manual_seed(seed))


class TestLatteConformance(BackboneConformance):
    video_size = VIDEO
    window = FRAMES


def test_shim_gives_exactly_the_original_output_when_frames_share_a_timestep(backbone, original) -> None:
    """Bit for bit: every replaced tensor is computed with the model's own operations in its order."""
    latents = _latents()
    conditioning = [backbone.encode_prompt("a red circle"), backbone.encode_prompt("a dog running")]
    per_row = torch.tensor([731.0, 42.0])
    with torch.no_grad():
        expected = original(latents, per_row, encoder_hidden_states=torch.cat(conditioning), return_dict=False)[0]
    assert expected.shape[1] == 8  # epsilon and the learned variance
    shimmed = backbone.predict(latents, per_row[:, None].expand(2, FRAMES), conditioning)
    assert torch.equal(shimmed, expected[:, :4])


def test_shim_changes_the_output_when_frame_timesteps_differ(backbone) -> None:
    latents = _latents()
    conditioning = [backbone.encode_prompt("a red circle")] * 2
    same = backbone.predict(latents, torch.full((2, FRAMES), 500.0), conditioning)
    differ = backbone.predict(latents, torch.tensor([[500.0, 520, 540, 560], [500.0] * 4]), conditioning)
    assert not torch.allclose(same[0], differ[0], atol=1e-4)
    assert torch.equal(same[1], differ[1])  # rows stay independent


def test_without_temporal_attention_each_frame_is_the_model_at_its_own_timestep(backbone, original) -> None:
    """Spatial blocks and the final layer: with temporal attention off, frames do not interact,
    so frame k of a diagonal call equals the unmodified model run with every frame at t_k."""
    latents = _latents(2)
    states = torch.cat([backbone.encode_prompt("a cat on the beach")] * 2)
    timesteps = torch.tensor([[10.0, 300, 650, 999], [999.0, 5, 400, 400]])
    with torch.no_grad(), backbone.shim.active(timesteps):
        diagonal = backbone.transformer(
            latents, timesteps[:, 0], encoder_hidden_states=states, enable_temporal_attentions=False, return_dict=False
        )[0]
    for k in range(FRAMES):
        with torch.no_grad():
            own = original(latents, timesteps[:, k], encoder_hidden_states=states, enable_temporal_attentions=False, return_dict=False)[0]
        torch.testing.assert_close(diagonal[:, :, k], own[:, :, k], rtol=1e-5, atol=1e-6)


def test_temporal_blocks_modulate_each_token_by_its_frames_timestep(backbone) -> None:
    """One temporal block under the shim against the block's math written out per token
    (PixArt adaLN-single: shift/scale before attention and MLP, gates on their outputs)."""
    transformer, block = backbone.transformer, backbone.transformer.temporal_transformer_blocks[0]
    timesteps = torch.tensor([[10.0, 300, 650, 999], [999.0, 5, 400, 400]])
    tokens = 16  # 4 x 4 patches
    width = block.scale_shift_table.shape[-1]
    x = torch.randn(2 * tokens, FRAMES, width, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        modulation = torch.stack([transformer.adaln_single(timesteps[:, k], batch_size=2, hidden_dtype=x.dtype)[0] for k in range(FRAMES)], 1)
        per_token = (block.scale_shift_table[None, None] + modulation.unflatten(-1, (6, -1))).repeat_interleave(tokens, dim=0)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = per_token.unbind(2)
        h = gate_msa * block.attn1(block.norm1(x) * (1 + scale_msa) + shift_msa) + x
        expected = gate_mlp * block.ff(block.norm2(h) * (1 + scale_mlp) + shift_mlp) + h
        with backbone.shim.active(timesteps):
            shimmed = block(x, None, None, None, torch.zeros(2 * tokens, modulation.shape[-1]))
    torch.testing.assert_close(shimmed, expected, rtol=1e-5, atol=1e-6)


def test_shim_is_inactive_outside_predict(backbone, original) -> None:
    latents, t = _latents(), torch.tensor([100.0, 900.0])
    states = torch.cat([backbone.encode_prompt("a")] * 2)
    with torch.no_grad():
        hooked = backbone.transformer(latents, t, encoder_hidden_states=states, return_dict=False)[0]
        plain = original(latents, t, encoder_hidden_states=states, return_dict=False)[0]
    assert torch.equal(hooked, plain)


def test_a_window_other_than_video_length_is_refused_with_the_fix(backbone) -> None:
    with pytest.raises(ConfigError, match="--f 4"):
        backbone.predict(torch.zeros(1, 4, 3, 8, 8), torch.full((1, 3), 10.0), [backbone.encode_prompt("a")])


def test_schedule_is_ddpm_linear_from_the_scheduler_config(backbone) -> None:
    assert backbone.schedule.prediction_type == "epsilon"
    assert torch.equal(backbone.schedule.alphas_cumprod, DiscreteSchedule.linear(0.0001, 0.02, 1000).alphas_cumprod)


def _run_config(folder: Path, **extra) -> RunConfig:
    return RunConfig(
        prompt="a dog running on the beach", backbone="latte", backbone_options=_options(folder),
        height=VIDEO[0], width=VIDEO[1], window=FRAMES, partitions=1, guidance_scale=3.0, seed=0, **extra,
    )


def test_fifo_end_to_end_through_the_python_api(latte_folder: Path) -> None:
    frames = list(iter_frames(_run_config(latte_folder, frames=3)))
    assert len(frames) == 3 and all(f.shape == (*VIDEO, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])


def test_fifo_end_to_end_through_the_cli_into_an_mp4(latte_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(
        main,
        ["generate", "a dog running on the beach", "--backbone", "latte-1",
         "--option", f"model={latte_folder}", "--option", "max_sequence_length=16", "--option", "device=cpu",
         "--height", "16", "--width", "16", "--f", str(FRAMES), "--n", "1", "--frames", "3", "--quiet",
         "--sink", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_backbones_command_lists_latte_with_its_defaults() -> None:
    import json

    result = CliRunner().invoke(main, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    latte = json.loads(result.stdout)["latte-1"]["defaults"]
    assert (latte["width"], latte["height"], latte["window"], latte["sampler"], latte["guidance_scale"]) == (512, 512, 16, "ddpm", 7.5)

"""LTX-Video 0.9 (LTXVideoTransformer3DModel, AutoencoderKLLTXVideo): native per-token timesteps,
token packing, flow matching with an explicit shift, chunked streaming decode, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.cli import main
from fifo_core.errors import ConfigError
from fifo_core.schedule import FlowMatchingSchedule
from fifo_diffusers.common import frames_from_video
from fifo_diffusers.ltx import ltx_stream_decoder

from fifo_core.testing import BackboneConformance

VIDEO = (64, 64)  # 32x spatial compression: latents 8 x 2 x 2


def _options(folder: Path, **extra) -> dict:
    return {"model": str(folder), "max_sequence_length": 16, "device": "cpu", "flow_shift": 3.0, **extra}


@pytest.fixture(scope="module")
def backbone(ltx_folder: Path):
    return load_backbone("ltx-video", _options(ltx_folder))


class TestLTXConformance(BackboneConformance):
    video_size = VIDEO


def test_tokens_are_packed_as_ltx_pipeline_packs_them(backbone) -> None:
    from diffusers import LTXPipeline

    latents = torch.randn(2, 8, 3, 2, 2)
    assert torch.equal(backbone.pack(latents), LTXPipeline._pack_latents(latents))
    assert torch.equal(backbone.unpack(backbone.pack(latents), 3, 2, 2), latents)
    timesteps = torch.tensor([[10.0, 20, 30], [40.0, 50, 60]])
    assert torch.equal(backbone.token_timesteps(timesteps, 2, 2).view(2, 3, 4), timesteps[:, :, None].expand(2, 3, 4))


def test_equal_frame_timesteps_match_the_one_timestep_call(backbone) -> None:
    """Per-token timesteps are native: with every frame at one timestep the prediction is the
    model's own one-timestep-per-sample call (up to the batch shape of the time embedding)."""
    latents = torch.randn(2, 8, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    conditioning = [backbone.encode_prompt("a red circle"), backbone.encode_prompt("a dog running")]
    per_row = torch.tensor([900.0, 250.0])
    states, mask = torch.cat([c[0] for c in conditioning]), torch.cat([c[1] for c in conditioning])
    with torch.no_grad():
        tokens = backbone.transformer(
            backbone.pack(latents), states, per_row, mask, num_frames=3, height=2, width=2,
            rope_interpolation_scale=(8 / 24, 32, 32), return_dict=False,
        )[0]
    expected = backbone.unpack(tokens, 3, 2, 2)
    torch.testing.assert_close(backbone.predict(latents, per_row[:, None].expand(2, 3), conditioning), expected, rtol=1e-5, atol=1e-6)
    diagonal = backbone.predict(latents, torch.tensor([[900.0, 800, 700], [250.0] * 3]), conditioning)
    assert not torch.allclose(diagonal[0], expected[0], atol=1e-4)
    torch.testing.assert_close(diagonal[1], expected[1], rtol=1e-5, atol=1e-6)


def test_prompt_mask_covers_the_prompts_tokens_only(backbone) -> None:
    states, mask = backbone.encode_prompt("a red circle")
    assert states.shape == (1, 16, 8) and mask.dtype == torch.bool
    assert mask[0, :3].all() and not mask[0, 3:].any()  # the word tokenizer adds no special tokens


def test_dynamic_shifting_needs_an_explicit_flow_shift(backbone, ltx_folder: Path) -> None:
    assert backbone.schedule == FlowMatchingSchedule(num_train_timesteps=1000, shift=3.0)
    with pytest.raises(ConfigError, match="flow_shift=") as error:
        load_backbone("ltx", {k: v for k, v in _options(ltx_folder).items() if k != "flow_shift"})
    assert "use_dynamic_shifting" in str(error.value)


def _stream(vae, latents: torch.Tensor, **settings) -> tuple[list[int], list[np.ndarray]]:
    decoder = ltx_stream_decoder(vae, **settings)
    counts, frames = [], []
    for k in range(latents.shape[1]):
        out = decoder.decode(latents[:, k])
        counts.append(len(out))
        frames += out
    frames += decoder.flush()
    return counts, frames


def test_stream_decode_against_whole_clip_decode(backbone) -> None:
    """The decoder is not causal, so chunks differ from a whole-clip decode near their edges.
    Measured on the tiny random VAE (no learned locality: a pessimistic case), mean absolute
    difference in uint8 levels over 10 latents / 73 frames: context=lookahead=2 (default) 10.1,
    3 -> 3.1, 4 -> 1.75; chunks that cover the whole clip give it exactly."""
    vae = backbone.vae
    latents = torch.randn(8, 10, 2, 2, generator=torch.Generator().manual_seed(2))
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    with torch.no_grad():
        whole = frames_from_video(vae.decoder(latents[None] * std / vae.config.scaling_factor + mean, None)[0].clamp(-1, 1))
    assert len(whole) == 1 + 8 * 9

    def difference(frames: list[np.ndarray]) -> float:
        assert len(frames) == len(whole)
        return float(np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, whole)]))

    counts, covering = _stream(vae, latents, context=9, lookahead=9, chunk=10)
    assert counts == [0] * 10 and difference(covering) == 0.0  # frame bookkeeping is exact
    counts, default = _stream(vae, latents, **backbone.decode_settings)
    assert counts == [0] * 5 + [25, 0, 0, 0, 32] and backbone.decode_settings == {"context": 2, "lookahead": 2, "chunk": 4}
    wider = difference(_stream(vae, latents, context=3, lookahead=3, chunk=4)[1])
    assert difference(default) <= 12.0 and wider <= 4.0 and wider < difference(default)


def test_fifo_end_to_end_through_the_python_api(ltx_folder: Path) -> None:
    config = RunConfig(
        prompt="a cat running on the beach", backbone="ltx", backbone_options=_options(ltx_folder),
        height=VIDEO[0], width=VIDEO[1], window=4, partitions=1, guidance_scale=3.0, frames=9, seed=1,
    )
    frames = list(iter_frames(config))
    assert len(frames) == 9  # latents give 1 + 8 frames
    assert all(f.shape == (*VIDEO, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])


def test_fifo_end_to_end_through_the_cli_into_an_mp4(ltx_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(
        main,
        ["generate", "a cat running on the beach", "--backbone", "ltx-video",
         "--option", f"model={ltx_folder}", "--option", "max_sequence_length=16", "--option", "device=cpu",
         "--option", "flow_shift=3", "--height", "64", "--width", "64", "--f", "4", "--n", "1", "--frames", "9",
         "--quiet", "--sink", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_backbones_command_lists_ltx_with_its_defaults() -> None:
    import json

    result = CliRunner().invoke(main, ["backbones", "--json"])
    assert result.exit_code == 0, result.output
    ltx = json.loads(result.stdout)["ltx-video"]["defaults"]
    assert (ltx["width"], ltx["height"], ltx["sampler"], ltx["fps"], ltx["frames_per_latent"]) == (704, 480, "euler", 24.0, 8)

"""Wan 2.1 (WanTransformer3DModel, AutoencoderKLWan): native per-token timesteps, flow matching,
causal streaming decode, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.schedule import FlowMatchingSchedule
from fifo_diffusers.common import frames_from_video

from fifo_core.testing import BackboneConformance

VIDEO = (64, 64)  # latents 4 x 8 x 8; 4 x 4 tokens per frame


@pytest.fixture(scope="module")
def backbone(wan_folder: Path):
    return load_backbone("wan2.1-t2v-1.3b", {"model": str(wan_folder), "max_sequence_length": 16, "device": "cpu"})


class TestWanConformance(BackboneConformance):
    video_size = VIDEO


def test_per_frame_timesteps_become_per_token_in_patch_order(backbone) -> None:
    timesteps = torch.tensor([[10.0, 20, 30], [40.0, 50, 60]])
    tokens = backbone.token_timesteps(timesteps, 8, 8)
    assert tokens.shape == (2, 3 * 16)
    assert torch.equal(tokens.view(2, 3, 16), timesteps[:, :, None].expand(2, 3, 16))


def test_equal_frame_timesteps_match_the_one_timestep_call(backbone) -> None:
    latents = torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    conditioning = [backbone.encode_prompt("a red circle")] * 2
    per_row = torch.tensor([900.0, 250.0])
    with torch.no_grad():
        expected = backbone.transformer(latents, per_row, encoder_hidden_states=torch.cat(conditioning), return_dict=False)[0]
    per_frame = backbone.predict(latents, per_row[:, None].expand(2, 3), conditioning)
    torch.testing.assert_close(per_frame, expected, rtol=1e-5, atol=1e-6)
    diagonal = backbone.predict(latents, torch.tensor([[900.0, 800, 700], [250.0, 250, 250]]), conditioning)
    assert not torch.allclose(diagonal[0], expected[0], atol=1e-4)


def test_schedule_is_flow_matching_with_the_configs_shift(backbone, wan_folder: Path) -> None:
    assert backbone.schedule == FlowMatchingSchedule(num_train_timesteps=1000, shift=3.0)
    shifted = load_backbone("wan", {"model": str(wan_folder), "flow_shift": 5.0, "max_sequence_length": 16, "device": "cpu"})
    assert shifted.schedule.shift == 5.0


def test_prompt_padding_is_zeros_after_the_prompts_tokens(backbone) -> None:
    states = backbone.encode_prompt("a red circle")
    assert states.shape == (1, 16, 8)
    assert states[0, :3].abs().sum() > 0 and states[0, 3:].abs().sum() == 0


def test_streaming_decode_equals_decoding_the_whole_clip(backbone) -> None:
    """Latents decoded one at a time at the queue head give the frames of a whole-clip decode:
    1 frame for the first latent, then 4 per latent."""
    latents = torch.randn(4, 5, 8, 8, generator=torch.Generator().manual_seed(2))
    decoder = backbone.frame_decoder()
    counts, streamed = [], []
    for k in range(latents.shape[1]):
        frames = decoder.decode(latents[:, k])
        counts.append(len(frames))
        streamed += frames
    vae = backbone.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, 4, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 4, 1, 1, 1)
    with torch.no_grad():
        whole = frames_from_video(vae.decode(latents[None] * std + mean, return_dict=False)[0][0])
    assert counts == [1, 4, 4, 4, 4]
    assert len(whole) == len(streamed) == 17
    assert all(np.array_equal(a, b) for a, b in zip(streamed, whole))


def test_fifo_end_to_end_through_the_python_api(wan_folder: Path) -> None:
    config = RunConfig(
        prompt="a cat running on the beach",
        backbone="wan",
        backbone_options={"model": str(wan_folder), "max_sequence_length": 16, "device": "cpu"},
        height=VIDEO[0], width=VIDEO[1], window=3, partitions=2, guidance_scale=4.0, frames=9, seed=1,
    )
    frames = list(iter_frames(config))
    assert len(frames) == 9  # latents give 1 + 4 + 4 frames
    assert all(f.shape == (*VIDEO, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[-1])

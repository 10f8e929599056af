"""Open-Sora Plan v1.1 as a FIFO backbone: loading the released layout, the training schedule,
prompt states cut as the released pipeline cuts them, chunked CausalVAE decoding at the queue head,
and end to end through the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.backbone import to_uint8_frame
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule
from fifo_opensora.causal_vae import SCALING_FACTOR

from fifo_core.testing import BackboneConformance

VIDEO = (32, 32)  # 8x VAE and 2x2 patches: latents 4 x 4 x 4, 2 x 2 tokens per frame
WINDOW = 17  # the 65x512x512 model's temporal position table


@pytest.fixture(scope="module")
def backbone(opensora_options: dict):
    return load_backbone("opensora-plan-v1.1", opensora_options)


class TestOpenSoraPlanConformance(BackboneConformance):
    video_size = VIDEO
    window = WINDOW


def test_the_schedule_is_the_training_one_and_ddpm_is_the_default(backbone) -> None:
    expected = DiscreteSchedule.linear(0.0001, 0.02, 1000, prediction_type="epsilon")
    assert torch.equal(backbone.schedule.alphas_cumprod, expected.alphas_cumprod)
    assert backbone.defaults.sampler == "ddpm" and backbone.defaults.window == WINDOW and backbone.defaults.partitions == 8


def test_prompt_states_are_cut_to_the_longest_prompt_in_the_call(backbone) -> None:
    short, long = backbone.encode_prompt("a dog"), backbone.encode_prompt("a red circle moving left at night")
    assert short.length < long.length
    assert short.states.shape[1] == long.states.shape[1] == 300
    latents = torch.randn(2, 4, WINDOW, 4, 4, generator=torch.Generator().manual_seed(0))
    timesteps = torch.full((2, WINDOW), 500.0)
    predicted = backbone.predict(latents, timesteps, [short, long])
    states = torch.cat([short.states[:, : long.length], long.states[:, : long.length]])
    with torch.no_grad():
        direct = backbone.transformer(latents, timesteps[:, 0], encoder_hidden_states=states, return_dict=False)[0][:, :4]
    assert torch.equal(predicted, direct)


def test_a_window_other_than_the_position_table_is_refused_with_the_fix(backbone) -> None:
    latents = torch.randn(1, 4, 8, 4, 4)
    with pytest.raises(ConfigError, match="--f 17"):
        backbone.predict(latents, torch.full((1, 8), 10.0), [backbone.encode_prompt("a dog")])


def test_chunked_decoding_gives_four_frames_per_latent_after_the_first(opensora_options: dict) -> None:
    backbone = load_backbone("opensora-plan-v1.1", {**opensora_options, "decode_chunk": 2, "decode_context": 1})
    latents = torch.randn(4, 6, 4, 4, generator=torch.Generator().manual_seed(3))
    decoder = backbone.frame_decoder()
    counts = [len(decoder.decode(latents[:, k])) for k in range(6)]
    assert counts == [0, 1 + 4, 0, 4 + 4, 0, 4 + 4]
    assert decoder.flush() == []


def test_with_context_over_the_whole_clip_the_last_latent_decodes_as_in_the_whole_clip(opensora_options: dict) -> None:
    """GroupNorm spans every frame of a clip, so frames depend on the clip they are decoded in;
    with the whole clip as context, the newest latent's frames are exactly the whole clip's."""
    backbone = load_backbone("opensora-plan-v1.1", {**opensora_options, "decode_context": 5, "decode_chunk": 1})
    latents = torch.randn(4, 6, 4, 4, generator=torch.Generator().manual_seed(3))
    decoder = backbone.frame_decoder()
    frames = [frame for k in range(6) for frame in decoder.decode(latents[:, k])]
    with torch.no_grad():
        whole = backbone.vae.decode(latents[None] / SCALING_FACTOR)[0].clamp(-1, 1)
    assert len(frames) == whole.shape[1] == 21
    assert all(np.array_equal(frames[k], to_uint8_frame(whole[:, k])) for k in range(17, 21))


def test_a_missing_variant_folder_names_the_expected_layout(tmp_path: Path, opensora_options: dict) -> None:
    with pytest.raises(ConfigError, match="65x512x512"):
        load_backbone("opensora-plan-v1.1", {**opensora_options, "model": str(tmp_path)})


def test_frames_come_out_of_the_api_four_per_latent(opensora_options: dict) -> None:
    config = RunConfig(
        prompt="a red circle", backbone="opensora-plan-v1.1", backbone_options=opensora_options,
        height=VIDEO[0], width=VIDEO[1], partitions=1, frames=9, seed=0,
    )
    frames = list(iter_frames(config))
    assert len(frames) == 9
    assert all(frame.shape == (*VIDEO, 3) and frame.dtype == np.uint8 for frame in frames)


def test_fp8_and_channels_last_options_reach_the_transformer(opensora_options: dict) -> None:
    from fifo_core.float8 import Float8Linear

    backbone = load_backbone("opensora-plan-v1.1", {**opensora_options, "fp8": True, "channels_last": True})
    assert backbone.denoiser.float8_linears == sum(isinstance(layer, Float8Linear) for layer in backbone.transformer.modules()) > 0
    assert backbone.denoiser.channels_last_convolutions == 1  # the patch embedding
    config = RunConfig(prompt="a cat", backbone="opensora-plan-v1.1", height=VIDEO[0], width=VIDEO[1], frames=5, seed=0)
    frames = list(iter_frames(config, backbone=backbone))
    assert len(frames) == 5  # a NaN or infinite model output would have stopped the run

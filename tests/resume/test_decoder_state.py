"""Issue #18: the decoders that keep state between latents (Wan's causal cache, LTX-Video's
chunked clips) save it and, restored into a fresh stream, decode on exactly as the first one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import load_backbone
from fifo_core.decoding import decoder_state, load_decoder_state

pytest.importorskip("diffusers")


def latents_of(backbone, count: int, size: tuple[int, int]) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [torch.randn(backbone.latent_shape(*size), generator=generator) for _ in range(count)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("name", "folder", "options"),
    [
        ("wan2.1-t2v-1.3b", "wan_folder", {"max_sequence_length": 16, "device": "cpu"}),
        ("ltx-video", "ltx_folder", {"max_sequence_length": 16, "device": "cpu", "flow_shift": 3.0}),
    ],
)
def test_a_restored_decoder_goes_on_as_the_original(name, folder, options, request) -> None:
    backbone = load_backbone(name, {"model": str(request.getfixturevalue(folder)), **options})
    latents = latents_of(backbone, 7, (64, 64))
    original = backbone.frame_decoder()
    for latent in latents[:4]:
        original.decode(latent)
    saved = decoder_state(original)
    assert saved and all(isinstance(value, torch.Tensor) for value in saved.values())
    restored = backbone.frame_decoder()
    load_decoder_state(restored, saved)
    fresh = backbone.frame_decoder()  # without the state: decodes differently, so the check can fail
    went_on = [frame for latent in latents[4:] for frame in original.decode(latent)] + list(original.flush())
    resumed = [frame for latent in latents[4:] for frame in restored.decode(latent)] + list(restored.flush())
    unaware = [frame for latent in latents[4:] for frame in fresh.decode(latent)] + list(fresh.flush())
    assert len(went_on) == len(resumed) > 0
    assert all(np.array_equal(a, b) for a, b in zip(went_on, resumed))
    assert len(unaware) != len(went_on) or not all(np.array_equal(a, b) for a, b in zip(went_on, unaware))

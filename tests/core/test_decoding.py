"""ChunkedClipDecoder: which frames each latent gets, and exactness for a decoder without memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fifo_core.backbone import to_uint8_frame
from fifo_core.decoding import ChunkedClipDecoder
from fifo_core.errors import ConfigError

PER_LATENT = 4


def expand_in_time(latents: torch.Tensor) -> torch.Tensor:
    """A 'VAE' whose clip's first latent gives one frame and every later latent ``PER_LATENT``
    frames of ramps scaled by it: no dependence between latents, so chunks must match exactly."""
    frames = [latents[:3, 0]]
    for k in range(1, latents.shape[1]):
        frames += [latents[:3, k] * (step + 1) / PER_LATENT for step in range(PER_LATENT)]
    return torch.stack(frames, dim=1).clamp(-1, 1)


def latents(count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(4, 2, 2, generator=generator) * 2 - 1 for _ in range(count)]


def stream(decoder: ChunkedClipDecoder, inputs: list[torch.Tensor]) -> tuple[list[int], list[np.ndarray]]:
    counts, frames = [], []
    for latent in inputs:
        out = decoder.decode(latent)
        counts.append(len(out))
        frames += out
    frames += decoder.flush()
    return counts, frames


@pytest.mark.parametrize(("context", "lookahead", "chunk"), [(1, 0, 1), (2, 0, 1), (2, 1, 3), (3, 2, 2)])
def test_a_stream_equals_the_whole_clip_when_latents_do_not_interact(context: int, lookahead: int, chunk: int) -> None:
    inputs = latents(9)
    whole = expand_in_time(torch.stack(inputs, dim=1))
    expected = [to_uint8_frame(whole[:, k]) for k in range(whole.shape[1])]
    _counts, frames = stream(ChunkedClipDecoder(expand_in_time, per_latent=PER_LATENT, context=context, lookahead=lookahead, chunk=chunk), inputs)
    assert len(frames) == 1 + PER_LATENT * 8
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected))


def test_output_follows_the_queue_head_one_latent_at_a_time_without_lookahead() -> None:
    counts, _frames = stream(ChunkedClipDecoder(expand_in_time, per_latent=PER_LATENT, context=2), latents(5))
    assert counts == [1, PER_LATENT, PER_LATENT, PER_LATENT, PER_LATENT]


def test_lookahead_delays_output_and_flush_hands_out_the_rest() -> None:
    decoder = ChunkedClipDecoder(expand_in_time, per_latent=PER_LATENT, context=1, lookahead=2)
    counts = [len(decoder.decode(latent)) for latent in latents(4)]
    assert counts == [0, 0, 1, PER_LATENT]
    assert len(decoder.flush()) == 2 * PER_LATENT


def test_each_clip_holds_at_most_context_plus_chunk_plus_lookahead_latents() -> None:
    sizes: list[int] = []

    def recording(clip: torch.Tensor) -> torch.Tensor:
        sizes.append(clip.shape[1])
        return expand_in_time(clip)

    stream(ChunkedClipDecoder(recording, per_latent=PER_LATENT, context=2, lookahead=1, chunk=2), latents(40))
    assert max(sizes) == 2 + 1 + 2


def test_a_context_of_zero_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="first latent decodes to a single frame"):
        ChunkedClipDecoder(expand_in_time, per_latent=PER_LATENT, context=0)

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


# --------------------------------------------------------------------------------------------
# BackgroundDecoder: decoding on a thread of its own


class RecordingDecoder:
    """Two frames per latent, the latent's mean as their value; notes the decoding threads."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.threads: set[str] = set()
        self.decoded = 0
        self.fail_at = fail_at

    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        import threading

        self.threads.add(threading.current_thread().name)
        if self.decoded == self.fail_at:
            raise RuntimeError("the VAE ran out of memory")
        self.decoded += 1
        value = np.uint8(int(latent.mean().item()))
        return [np.full((2, 2, 3), value, np.uint8)] * 2

    def flush(self) -> list[np.ndarray]:
        return [np.full((2, 2, 3), 255, np.uint8)]


def test_background_decoding_gives_the_same_frames_one_latent_later_on_another_thread() -> None:
    from fifo_core.decoding import BackgroundDecoder

    inner = RecordingDecoder()
    background = BackgroundDecoder(inner, torch.device("cpu"))
    outputs = [background.decode(torch.full((1, 2, 2), float(k))) for k in range(4)]
    assert [len(out) for out in outputs] == [0, 2, 2, 2]
    assert [int(frame[0, 0, 0]) for out in outputs for frame in out] == [0, 0, 1, 1, 2, 2]
    rest = background.flush()
    assert [int(frame[0, 0, 0]) for frame in rest] == [3, 3, 255]
    background.close()
    assert inner.threads and all(name.startswith("fifo-decode") for name in inner.threads)


def test_a_failure_on_the_decoding_thread_is_raised_to_the_caller() -> None:
    from fifo_core.decoding import BackgroundDecoder

    background = BackgroundDecoder(RecordingDecoder(fail_at=1), torch.device("cpu"))
    background.decode(torch.zeros(1, 2, 2))
    background.decode(torch.zeros(1, 2, 2))
    with pytest.raises(RuntimeError, match="out of memory"):
        background.decode(torch.zeros(1, 2, 2))
    background.close()


def test_a_run_with_overlapped_decoding_makes_exactly_the_same_video() -> None:
    from fifo_core.api import RunConfig, iter_frames

    plain = list(iter_frames(RunConfig(prompt="a red circle", backbone="gaussian-ar1", frames=40, seed=3, overlap_decode=False)))
    overlapped = list(iter_frames(RunConfig(prompt="a red circle", backbone="gaussian-ar1", frames=40, seed=3, overlap_decode=True)))
    assert len(plain) == len(overlapped) == 40
    assert all(np.array_equal(a, b) for a, b in zip(plain, overlapped))

"""The sampling loop with the recording fake backbone: batching, guidance, prompts, warm-up,
frame counts and seeds."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
import torch

from fifo_core.config import PromptTimeline, TimedPrompt
from fifo_core.errors import ConfigError
from fifo_core.sampling import FifoSampler
from fifo_core.schedule import DiscreteSchedule

from .fakes import LoopObserver, RecordingBackbone, fake_sampler, prompt_offset


def sampler_for(backbone: RecordingBackbone, prompt="a prompt", *, window=4, partitions=2, lookahead=True, **options) -> FifoSampler:
    options.setdefault("negative_prompt", "blurry")
    return fake_sampler(backbone, prompt, window=window, partitions=partitions, lookahead=lookahead, **options)


def latents_of(sampler: FifoSampler, count: int) -> list[torch.Tensor]:
    return [clean.latent for clean in islice(sampler.latents(), count)]


# --------------------------------------------------------------------------------------------
# Batching and guidance


@pytest.mark.parametrize(("guidance", "rows_per_window"), [(1.0, 1), (7.5, 2)])
@pytest.mark.parametrize("lookahead", [False, True])
def test_one_model_call_per_iteration_holds_every_window(guidance: float, rows_per_window: int, lookahead: bool) -> None:
    backbone = RecordingBackbone(window=4)
    sampler = sampler_for(backbone, window=4, partitions=3, lookahead=lookahead, guidance_scale=guidance, start="clip")
    observer = LoopObserver(sampler, backbone)
    observer.run(5)
    windows = 6 if lookahead else 3  # the paper: n windows, 2n with lookahead (f even)
    for record in observer.iterations:
        assert len(record.calls) == 1
        assert record.calls[0].latents.shape == (windows * rows_per_window, 2, 4, 2, 2)
        assert record.event.model_rows == windows * rows_per_window
    # The clip start samples its clip one window at a time, also one call per step.
    assert [call.latents.shape[0] for call in observer.start_calls] == [rows_per_window] * sampler.layout.num_levels


@pytest.mark.parametrize("max_batch", [1, 3, 5, 12, 100])
def test_max_batch_splits_the_rows_into_chunks(max_batch: int) -> None:
    backbone = RecordingBackbone(window=4)
    sampler = sampler_for(backbone, window=4, partitions=3, lookahead=True, guidance_scale=2.0, start="clip", max_batch=max_batch)
    observer = LoopObserver(sampler, backbone)
    observer.run(2)
    rows = 12  # 6 windows, both halves of guidance
    expected = [min(max_batch, rows - start) for start in range(0, rows, max_batch)]
    for record in observer.iterations:
        assert [call.latents.shape[0] for call in record.calls] == expected
        prompts = [p for call in record.calls for p in call.prompts]
        assert prompts == ["a prompt"] * 6 + ["blurry"] * 6, "conditional rows first, then the negative prompt"


def test_guidance_combines_the_two_halves_and_the_last_step_returns_it() -> None:
    # A "sample"-predicting backbone that answers a constant per prompt: the clean frame that
    # leaves is then exactly the guided prediction uncond + g (cond - uncond).
    def per_prompt(latents, timesteps, conditioning):
        values = torch.tensor([prompt_offset(c.prompt) for c in conditioning])
        return values[:, None, None, None, None].expand_as(latents).clone()

    backbone = RecordingBackbone(window=4, prediction=per_prompt)
    guidance = 5.0
    sampler = sampler_for(backbone, "a cat", guidance_scale=guidance, negative_prompt="a dog")
    cond, uncond = torch.tensor(prompt_offset("a cat")), torch.tensor(prompt_offset("a dog"))
    assert cond != uncond
    for latent in latents_of(sampler, 4):
        torch.testing.assert_close(latent, (uncond + guidance * (cond - uncond)).expand(2, 2, 2), rtol=1e-6, atol=1e-7)
    assert set(backbone.encoded) == {"a cat", "a dog"} and len(backbone.encoded) == 2, "each prompt encoded once"


def test_start_guidance_guides_only_the_first_clip() -> None:
    backbone = RecordingBackbone(window=4)
    sampler = sampler_for(backbone, window=4, partitions=2, lookahead=True, guidance_scale=1.0, start="clip", start_guidance_scale=3.0)
    observer = LoopObserver(sampler, backbone)
    observer.run(3)
    assert [call.prompts for call in observer.start_calls] == [["a prompt", "blurry"]] * sampler.layout.num_levels
    for record in observer.iterations:
        assert all(call.prompts == ["a prompt"] * len(call.prompts) for call in record.calls)


def test_start_guidance_comes_from_the_run_then_the_backbone_then_the_guidance_scale() -> None:
    from fifo_core.backbone import BackboneDefaults
    from fifo_core.config import RunConfig
    from fifo_core.starts import ClipStart

    plain = BackboneDefaults(height=8, width=8, window=4, guidance_scale=5.0, start="clip")
    assert RunConfig(prompt="x").resolve(plain).start_guidance_scale == 5.0
    shapes_like = plain.model_copy(update={"guidance_scale": 1.0, "start": ClipStart(guidance_scale=3.0)})
    assert RunConfig(prompt="x").resolve(shapes_like).start_guidance_scale == 3.0
    assert RunConfig(prompt="x", start_guidance_scale=2.0).resolve(shapes_like).start_guidance_scale == 2.0
    with pytest.raises(ConfigError, match="--start clip"):
        RunConfig(prompt="x", start="ramp", start_guidance_scale=2.0).resolve(shapes_like)


def test_without_guidance_the_negative_prompt_is_never_used() -> None:
    backbone = RecordingBackbone(window=4)
    latents_of(sampler_for(backbone, guidance_scale=1.0), 3)
    assert all(call.prompts == ["a prompt"] * len(call.prompts) for call in backbone.calls)
    assert "blurry" not in backbone.encoded


def test_ramp_calls_only_windows_whose_slots_have_started() -> None:
    backbone = RecordingBackbone(window=2)
    sampler = sampler_for(backbone, window=2, partitions=2, lookahead=False)  # slots 0..3, windows [0,2) [2,4)
    observer = LoopObserver(sampler, backbone)
    observer.run(4)
    rows = [record.calls[0].latents.shape[0] for record in observer.iterations[:4]]
    # Iterations 0 and 1 move only slots of the first window (the head, then slots 0-1);
    # from iteration 2 on the second window's slots have started too.
    assert rows == [1, 1, 2, 2]
    first = observer.iterations[0]
    assert torch.equal(first.calls[0].latents[0].permute(1, 0, 2, 3), first.before.latents[0:2])


# --------------------------------------------------------------------------------------------
# Prompt timelines


def test_windows_holding_later_frames_get_the_later_prompt() -> None:
    timeline = PromptTimeline(entries=(TimedPrompt(start=0, prompt="sunrise"), TimedPrompt(start=10, prompt="sunset")))
    backbone = RecordingBackbone(window=4)
    sampler = sampler_for(backbone, timeline, window=4, partitions=2, lookahead=True)
    observer = LoopObserver(sampler, backbone)
    yielded = observer.run(30)
    context = sampler.layout.context
    switched = False
    for record in observer.iterations:
        windows = [w for w in sampler.layout.windows if bool((record.before.levels[w.write_start : w.write_stop] > 0).any())]
        prompts = record.calls[0].prompts
        order = ["sunrise", "sunset"]
        assert [order.index(p) for p in prompts] == sorted(order.index(p) for p in prompts), "later windows, later prompts"
        for window, prompt in zip(windows, prompts):
            ids = record.before.frame_ids[window.write_start : window.write_stop].tolist()
            if min(ids) >= 10:
                assert prompt == "sunset"
            if max(ids) < 10:
                assert prompt == "sunrise"
        switched |= "sunset" in prompts
        assert record.before.frame_ids[context:].tolist() == sorted(record.before.frame_ids[context:].tolist())
    assert switched
    assert [clean.prompt for clean in yielded] == ["sunrise" if clean.index < 10 else "sunset" for clean in yielded]


def test_timeline_counts_video_frames_not_latents() -> None:
    # A causal video VAE: latent 0 is frame 0, latent j >= 1 frames 4j-3 .. 4j. The prompt starting at
    # video frame 8 holds from latent 3 (frames 9-12) on; latent 2 (frames 5-8) starts before it.
    timeline = PromptTimeline(entries=(TimedPrompt(start=0, prompt="a"), TimedPrompt(start=8, prompt="b")))
    sampler = sampler_for(RecordingBackbone(window=4, frames_per_latent=4), timeline)
    assert [sampler.prompt_for_latent(i) for i in range(5)] == ["a", "a", "a", "b", "b"]
    assert sampler.prompt_for_latent(-3) == "a", "warm-up frames belong to the first prompt"


def test_timeline_with_a_vae_whose_every_latent_gives_the_same_frame_count() -> None:
    timeline = PromptTimeline(entries=(TimedPrompt(start=0, prompt="a"), TimedPrompt(start=8, prompt="b")))
    backbone = RecordingBackbone(window=4, frames_per_latent=4)
    backbone.defaults = backbone.defaults.model_copy(update={"first_latent_frames": 4})
    sampler = sampler_for(backbone, timeline)
    assert [sampler.prompt_for_latent(i) for i in range(4)] == ["a", "a", "b", "b"]


# --------------------------------------------------------------------------------------------
# Frame counts with decoders that hold frames back or multiply them


class PairDecoder:
    """A temporally compressing VAE: two video frames per latent."""

    def __init__(self) -> None:
        self.decoded = 0

    def decode(self, latent):
        self.decoded += 1
        return [np.full((2, 2, 3), self.decoded, np.uint8), np.full((2, 2, 3), 100 + self.decoded, np.uint8)]

    def flush(self):
        return []


class LateDecoder:
    """Needs one latent of look-ahead: nothing for the first latent, then one frame per latent."""

    def __init__(self) -> None:
        self.decoded = 0

    def decode(self, latent):
        self.decoded += 1
        return [] if self.decoded == 1 else [np.full((2, 2, 3), self.decoded, np.uint8)]

    def flush(self):
        return [np.zeros((2, 2, 3), np.uint8)]


@pytest.mark.parametrize("limit", [1, 2, 5, 8])
@pytest.mark.parametrize(("decoder", "latents_for"), [(PairDecoder, lambda n: -(-n // 2)), (LateDecoder, lambda n: n + 1)])
def test_frames_yields_exactly_limit_frames(decoder, latents_for, limit: int) -> None:
    decoders = []
    backbone = RecordingBackbone(window=2, decoder_factory=lambda: decoders.append(decoder()) or decoders[-1])
    frames = list(sampler_for(backbone, window=2, partitions=2).frames(limit))
    assert len(frames) == limit
    assert len(decoders) == 1 and decoders[0].decoded == latents_for(limit), "no latent decoded beyond need"


def test_frames_refuses_a_limit_below_one() -> None:
    with pytest.raises(ConfigError) as raised:
        next(sampler_for(RecordingBackbone()).frames(0))
    assert raised.value.field == "frames" and "at least 1" in str(raised.value)


# --------------------------------------------------------------------------------------------
# Seeds


SEED_CASES = [
    dict(start="ramp", eta=0.0),
    dict(start="ramp", eta=1.0),
    dict(start="clip", eta=0.0),
    dict(start="clip", eta=0.6),
]


@pytest.mark.parametrize("case", SEED_CASES, ids=lambda case: f"{case['start']}-eta{case['eta']}")
def test_the_seed_alone_determines_the_output(case: dict) -> None:
    def run(seed: int, **extra) -> list[torch.Tensor]:
        torch.manual_seed(seed * 7 + 1)  # the global generator must play no part
        np.random.seed(seed + 3)
        return latents_of(sampler_for(RecordingBackbone(window=4), seed=seed, guidance_scale=3.0, **case, **extra), 6)

    first = run(11)
    assert all(torch.equal(a, b) for a, b in zip(first, run(11))), "same seed, same frames, bit for bit"
    other = run(12)
    assert all(not torch.allclose(a, b) for a, b in zip(first, other)), "another seed, other frames"
    for a, b in zip(first, run(11, max_batch=1)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_clip_and_ramp_starts_differ_but_each_is_reproducible() -> None:
    ramp = latents_of(sampler_for(RecordingBackbone(), seed=5, start="ramp"), 3)
    clip = latents_of(sampler_for(RecordingBackbone(), seed=5, start="clip"), 3)
    assert not torch.equal(torch.stack(ramp), torch.stack(clip))
    assert torch.equal(torch.stack(clip), torch.stack(latents_of(sampler_for(RecordingBackbone(), seed=5, start="clip"), 3)))


def test_epsilon_backbone_stays_finite_over_a_long_run() -> None:
    """The fake's smooth prediction as an epsilon model: guards the seed tests' realism."""
    backbone = RecordingBackbone(window=4, schedule=DiscreteSchedule.scaled_linear())
    for latent in latents_of(sampler_for(backbone, seed=1, eta=1.0), 12):
        assert torch.isfinite(latent).all()



@pytest.mark.parametrize("start", ["ramp", "clip"])
def test_no_random_draw_is_used_twice(start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh Gaussian noise must be independent of everything already in the queue; reusing a
    draw correlates a latent's noise with its own content (a wrong forward-process marginal)."""
    import fifo_core.noise

    drawn: dict[tuple[str, int], int] = {}
    original = fifo_core.noise.seeded_noise

    def recording(seed, stream, index, shape):
        drawn[(stream, index)] = drawn.get((stream, index), 0) + 1
        return original(seed, stream, index, shape)

    monkeypatch.setattr(fifo_core.noise, "seeded_noise", recording)
    latents_of(sampler_for(RecordingBackbone(window=4), start=start, eta=0.5), 10)
    assert sorted(key for key, count in drawn.items() if count > 1) == []

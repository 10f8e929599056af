"""The queue's invariants, as properties: first over ``LatentQueue`` alone (a state machine), then
over the real sampling loop (``FifoSampler`` with the recording fake backbone).

What FIFO promises (paper section 3, REFERENCE.md section 1):
* the queue length is constant, and so is the memory it holds, however many frames are produced;
* noise levels increase from head to tail: strictly once warm, non-decreasing during the ramp;
* frames leave in the order they entered, each after passing every level S..0 exactly once;
* each iteration writes every moving slot exactly once, from the window whose write range holds it.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fifo_core.partition import QueueLayout
from fifo_core.queue import LatentQueue
from fifo_core.sampling import FifoSampler
from fifo_core.steps import FrameLevels, ddim_step

from .fakes import Iteration, LoopObserver, RecordingBackbone, fake_sampler

# --------------------------------------------------------------------------------------------
# The queue alone


class QueueMachine(RuleBasedStateMachine):
    """Drives a ``LatentQueue`` the way the sampler does, with a ``QueueLayout``'s windows doing
    the writes. Channel 0 of a slot's latent carries its frame id and channel 1 its level as last
    written, so the content can be followed through shifts independently of the queue's bookkeeping."""

    @initialize(
        window=st.integers(1, 6),
        partitions=st.integers(1, 6),
        lookahead=st.booleans(),
        warm_start=st.booleans(),
    )
    def start(self, window: int, partitions: int, lookahead: bool, warm_start: bool) -> None:
        lookahead = lookahead and window >= 2
        self.layout = QueueLayout(window=window, partitions=partitions, lookahead=lookahead)
        context, levels = self.layout.context, self.layout.num_levels
        self.S = levels
        ids = torch.cat([torch.arange(-context, 0), torch.arange(levels)])
        if warm_start:  # the reference's clip start: already on the diagonal
            slot_levels = torch.cat([torch.zeros(context, dtype=torch.long), torch.arange(1, levels + 1)])
        else:  # pure noise: every slot at the top level, the ramp warm-up follows
            slot_levels = torch.full((context + levels,), levels, dtype=torch.long)
        latents = torch.stack([ids.double(), slot_levels.double()], dim=1)[:, :, None, None].expand(-1, 2, 2, 3).clone()
        self.queue = LatentQueue(latents, slot_levels.clone(), ids.clone(), context, levels)
        self.shape = tuple(latents.shape)
        self.warm = warm_start
        self.iterations = 0
        self.history = {int(i): [int(l)] for i, l in zip(ids[context:], slot_levels[context:])}
        self.entered = list(range(levels))
        self.left: list[int] = []
        self.next_id = levels

    @precondition(lambda self: not self.queue.head_is_clean())
    @rule()
    def denoise(self) -> None:
        """One iteration's step: move the moving slots down one level, each written by exactly
        one window, from that window's write range."""
        queue = self.queue
        moving = queue.moving()
        assert not moving[: queue.context].any(), "lookahead context is never denoised"
        denoised = queue.levels[queue.context :]
        if self.warm:
            assert moving[queue.context :].all(), "once warm, every denoised slot moves every iteration"
        else:
            # The ramp: the head starts at once, each following slot one iteration later.
            expected = torch.arange(self.S) <= self.iterations
            assert torch.equal(moving[queue.context :], expected)
        writes = Counter(slot for w in self.layout.windows for slot in w.write if moving[slot])
        assert writes == Counter(moving.nonzero().squeeze(1).tolist()), "each moving slot written exactly once"
        slots = moving.nonzero().squeeze(1)
        queue.levels[slots] -= 1
        queue.latents[slots, 1] = queue.levels[slots].double()[:, None, None]
        for slot in slots.tolist():
            self.history[int(queue.frame_ids[slot])].append(int(queue.levels[slot]))
        assert bool((denoised >= 0).all())
        self.iterations += 1

    @precondition(lambda self: self.queue.head_is_clean())
    @rule()
    def dequeue_and_enqueue(self) -> None:
        queue = self.queue
        fresh = torch.tensor([float(self.next_id), float(self.S)], dtype=torch.float64)[:, None, None].expand(2, 2, 3)
        frame_id, latent = queue.shift_in(fresh, self.next_id)
        self.history[self.next_id] = [self.S]
        self.entered.append(self.next_id)
        self.next_id += 1
        assert frame_id == self.entered[len(self.left)], "frames leave in the order they entered"
        assert float(latent[0, 0, 0]) == frame_id, "the latent leaves with its own frame"
        assert float(latent[1, 0, 0]) == 0.0, "and leaves clean"
        levels_seen = self.history.pop(frame_id)
        first = levels_seen[0]
        assert levels_seen == list(range(first, -1, -1)), "one level at a time, none skipped or repeated"
        if first == self.S:
            assert len(levels_seen) == self.S + 1, "every level S..0 exactly once"
        self.left.append(frame_id)
        self.warm = True

    @precondition(lambda self: self.queue.head_is_clean())
    @rule()
    def head_that_is_clean_does_not_move(self) -> None:
        assert not bool(self.queue.moving()[self.queue.context])

    @invariant()
    def constant_size(self) -> None:
        assert tuple(self.queue.latents.shape) == self.shape
        assert self.queue.levels.shape == self.queue.frame_ids.shape == (self.shape[0],)

    @invariant()
    def levels_increase_head_to_tail(self) -> None:
        denoised = self.queue.levels[self.queue.context :]
        steps = denoised[1:] - denoised[:-1]
        if self.warm:
            assert bool((steps > 0).all()), f"strictly increasing once warm, got {denoised.tolist()}"
        else:
            assert bool((steps >= 0).all()), f"non-decreasing during the ramp, got {denoised.tolist()}"
        assert int(denoised.max()) <= self.S and int(denoised.min()) >= 0

    @invariant()
    def content_follows_its_frame(self) -> None:
        queue = self.queue
        assert torch.equal(queue.latents[:, 0, 0, 0], queue.frame_ids.double())
        denoised = slice(queue.context, None)
        assert torch.equal(queue.latents[denoised, 1, 0, 0], queue.levels[denoised].double())

    @invariant()
    def context_holds_the_last_frames_that_left(self) -> None:
        context = self.queue.context
        if context and len(self.left) >= context:
            assert self.queue.frame_ids[:context].tolist() == self.left[-context:]
            assert bool((self.queue.levels[:context] == 0).all())


QueueMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=60, deadline=None)
TestQueueMachine = QueueMachine.TestCase


# --------------------------------------------------------------------------------------------
# The real sampling loop


def check_iteration(sampler: FifoSampler, record: Iteration, max_batch: int | None) -> set[int]:
    """Check one iteration of the real loop against its model calls; return the moved slots."""
    layout, grid = sampler.layout, sampler.grid
    before, stepped = record.before, record.stepped
    assert torch.equal(before.frame_ids, stepped.frame_ids), "no slot changes frame during the step"
    drop = before.levels - stepped.levels
    assert set(drop.unique().tolist()) <= {0, 1}, "a step moves a slot by one level at most"
    moved = set(drop.nonzero().squeeze(1).tolist())
    assert all(slot >= layout.context for slot in moved), "context slots are never denoised"
    for slot in set(range(layout.length)) - moved:
        assert torch.equal(before.latents[slot], stepped.latents[slot]), f"slot {slot} did not move, yet changed"

    windows = [w for w in layout.windows if moved & set(w.write)]
    guided = sampler.settings.guidance_scale != 1.0
    rows = [row for call in record.calls for row in range(call.latents.shape[0])]
    assert len(rows) == len(windows) * (2 if guided else 1), "one row per window, twice with guidance"
    if max_batch is None:
        assert len(record.calls) == (1 if windows else 0), "all windows and both guidance halves in one call"
    else:
        assert all(call.latents.shape[0] <= max_batch for call in record.calls)
        assert len(record.calls) == -(-len(rows) // max_batch), "no more calls than the row cap needs"
    if not windows:
        assert record.event.model_rows == 0
        return moved
    assert record.event.model_rows == len(rows)
    latents = torch.cat([call.latents for call in record.calls])  # 'b c f h w'
    timesteps = torch.cat([call.timesteps for call in record.calls])
    outputs = torch.cat([call.output for call in record.calls]).float()
    prompts = [prompt for call in record.calls for prompt in call.prompts]
    if guided:
        half = len(windows)
        assert prompts[half:] == [sampler.settings.negative_prompt] * half, "the unconditional half uses the negative prompt"
        assert torch.equal(latents[:half], latents[half:]) and torch.equal(timesteps[:half], timesteps[half:])
        outputs = outputs[half:] + sampler.settings.guidance_scale * (outputs[:half] - outputs[half:])

    written = Counter()
    for row, window in enumerate(windows):
        assert latents.shape[2] == layout.window, "a window is exactly f frames"
        read = list(window.read)
        assert torch.equal(latents[row].permute(1, 0, 2, 3), before.latents[read]), "the model sees the queue's slots"
        expected_t = grid.timesteps[before.levels[read]].float()
        assert torch.equal(timesteps[row], expected_t), "each frame gets the timestep of its own level"
        for slot in window.write:
            if slot not in moved:
                continue
            written[slot] += 1
            level = before.levels[slot : slot + 1]
            output = outputs[row, :, slot - window.read_start][None]
            if sampler.eta == 0:
                expected = ddim_step(
                    before.latents[slot : slot + 1], output, FrameLevels.gather(grid, level),
                    FrameLevels.gather(grid, level - 1), sampler.schedule.prediction_type,
                )
                torch.testing.assert_close(stepped.latents[slot : slot + 1], expected, rtol=1e-6, atol=1e-6)
    assert written == Counter(moved), "every moving slot is written exactly once per iteration"
    return moved


@st.composite
def loop_settings(draw) -> dict:
    lookahead = draw(st.booleans())
    return dict(
        window=draw(st.integers(2 if lookahead else 1, 5)),
        partitions=draw(st.integers(1, 3)),
        lookahead=lookahead,
        guidance_scale=draw(st.sampled_from([1.0, 4.0])),
        max_batch=draw(st.sampled_from([None, None, 1, 2, 3])),
        start=draw(st.sampled_from(["ramp", "clip"])),
        eta=draw(st.sampled_from([0.0, 0.0, 0.7])),
        extra=draw(st.integers(1, 8)),
    )


def make_sampler(backbone: RecordingBackbone, **options) -> FifoSampler:
    return fake_sampler(backbone, negative_prompt="not this", **options)


@settings(max_examples=30, deadline=None)
@given(loop_settings())
def test_the_real_loop_keeps_every_queue_invariant(config: dict) -> None:
    extra = config.pop("extra")
    backbone = RecordingBackbone(window=config["window"])
    sampler = make_sampler(backbone, **config)
    observer = LoopObserver(sampler, backbone)
    S, context = sampler.layout.num_levels, sampler.layout.context
    clip_start = config["start"] == "clip"
    yielded = observer.run(S + extra)
    ramp = not clip_start

    moves: Counter[int] = Counter()
    levels_seen: dict[int, list[int]] = {}
    length = sampler.layout.length
    for index, record in enumerate(observer.iterations):
        moved = check_iteration(sampler, record, config["max_batch"])
        if ramp and index < S:
            # The pure-noise ramp: the head starts at once, each later slot one iteration later,
            # so no window is called whose written slots are all still waiting.
            assert moved == set(range(context, context + index + 1))
        else:
            assert moved == set(range(context, length)), "once warm, every denoised slot moves"
        for slot in moved:
            moves[int(record.before.frame_ids[slot])] += 1
        for state in (record.before, record.stepped):
            for slot in range(context, length):
                seen = levels_seen.setdefault(int(state.frame_ids[slot]), [])
                if not seen or seen[-1] != int(state.levels[slot]):
                    seen.append(int(state.levels[slot]))
        for state in (record.stepped, record.after):
            assert state.latents.shape == (length, 2, 2, 2), "the queue neither grows nor shrinks"
        denoised = record.after.levels[context:]
        increasing = denoised[1:] > denoised[:-1]
        warm = clip_start or index >= S - 1
        assert bool(increasing.all()) if warm else bool((denoised[1:] >= denoised[:-1]).all())
        if record.dequeued is not None:
            frame_id, latent = record.dequeued
            head = context
            assert int(record.stepped.levels[head]) == 0 and int(record.stepped.frame_ids[head]) == frame_id
            assert torch.equal(latent, record.stepped.latents[head])

    # Frames leave in the order they entered, numbered from 0, and leave clean after S steps.
    assert [clean.index for clean in yielded] == list(range(len(yielded)))
    assert len(yielded) == len([r for r in observer.iterations if r.dequeued and r.dequeued[0] >= 0])
    for clean in yielded:
        if clip_start and clean.index < sampler.layout.window:
            # Clip-start frames were partly denoised by the clip; they start at their slot's level.
            first = levels_seen[clean.index][0]
            assert levels_seen[clean.index] == list(range(first, -1, -1))
            assert moves[clean.index] == first
        else:
            assert levels_seen[clean.index] == list(range(S, -1, -1)), "every level S..0 exactly once"
            assert moves[clean.index] == S
    # Memory: the tensors the sampler and its queue hold do not grow with the frames produced.
    assert len(set(observer.tensor_sizes)) == 1


def test_memory_does_not_grow_with_the_video_length() -> None:
    backbone = RecordingBackbone(window=4)
    sampler = make_sampler(backbone, window=4, partitions=2, lookahead=True, guidance_scale=3.0)
    observer = LoopObserver(sampler, backbone)
    observer.run(100)
    assert len(set(observer.tensor_sizes)) == 1
    assert tuple(observer.queue.latents.shape) == (2 + 8, 2, 2, 2)
    assert len(sampler.model.conditioning) == 2, "only the prompt and the negative prompt are cached"


@pytest.mark.parametrize("lookahead", [False, True])
def test_lookahead_context_holds_the_last_frames_that_left(lookahead: bool) -> None:
    backbone = RecordingBackbone(window=4)
    sampler = make_sampler(backbone, window=4, partitions=2, lookahead=lookahead)
    observer = LoopObserver(sampler, backbone)
    yielded = observer.run(20)
    context = sampler.layout.context
    final = observer.iterations[-1].after
    if context:
        assert final.frame_ids[:context].tolist() == [clean.index for clean in yielded][-context:]
    assert bool((final.levels[:context] == 0).all())
    for slot in range(context):
        frame = yielded[len(yielded) - context + slot]
        assert torch.equal(final.latents[slot], frame.latent), "the context is the clean frames themselves"

"""Prompt agreement of FIFO videos from the shapes backbone: generate, then check every frame.

Used by ``benchmarks/prompt_agreement.py`` (the full 20 prompts x 500 frames), the training
script's ``--evaluate`` and the tests (a smaller version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fifo_core.api import make_sampler
from fifo_core.config import RunConfig
from fifo_core.sampling import FifoSampler

from fifo_shapes.checker import Agreement, check_frames, evaluation_prompts, observe
from fifo_shapes.world import Caption


def sampler_for(backbone: Any, prompt: str, seed: int = 0, **settings: Any) -> FifoSampler:
    """A FIFO sampler with the backbone's defaults, overridden by ``settings`` (RunConfig fields)."""
    return make_sampler(RunConfig(prompt=prompt, backbone="fifo-shapes", seed=seed, **settings), backbone=backbone)


def measure_agreement(
    backbone: Any,
    prompts: int | list[Caption] = 20,
    frames: int = 500,
    seed: int = 0,
    on_video: Callable[[Caption, Agreement], None] | None = None,
    **settings: Any,
) -> Agreement:
    """Agreement over ``frames`` frames for each prompt (``evaluation_prompts(prompts)`` for a count)."""
    captions = evaluation_prompts(prompts) if isinstance(prompts, int) else prompts
    total = Agreement()
    for index, caption in enumerate(captions):
        sampler = sampler_for(backbone, caption.text, seed=seed + index, **settings)
        observations = [observe(frame) for frame in sampler.frames(frames)]
        video = Agreement()
        video.add(check_frames(observations, caption))
        total.frames += video.frames
        for aspect, count in video.counts.items():
            total.counts[aspect] += count
        if on_video is not None:
            on_video(caption, video)
    return total

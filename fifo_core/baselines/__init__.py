"""Other ways to make a long video with the same backbone, to compare FIFO-Diffusion against
(paper Fig. 7). Each is a long-video strategy over the public :class:`~fifo_core.backbone.Backbone`
protocol and a run's :class:`~fifo_core.config.RunSettings`, built from the core's own pieces: the
same level grid of ``S = n f`` levels, the per-frame scheduler step (:mod:`fifo_core.steps`), the
seeded noise streams (:mod:`fifo_core.noise`) and guidance (:class:`~fifo_core.model_call.GuidedModel`).

| strategy | module | what it does | memory |
|---|---|---|---|
| ``independent`` | :mod:`.clips` | ordinary clips of ``f`` frames, sampled on their own and joined end to end | one clip |
| ``autoregressive`` | :mod:`.autoregressive` | chunks of ``f`` frames; each starts from the previous chunk's last ``k`` frames, kept by inpainting (at every step the known frames are replaced by their clean values noised to the step's level) | one chunk |
| ``freenoise`` | :mod:`.freenoise` | FreeNoise-style: the whole video at once, the first window's noise reused in shuffled order by later windows (noise rescheduling), every step the mean of overlapping windows' predictions per frame (window fusion) | the whole video |

Guidance follows FIFO's own defaults: content made from nothing (every independent clip, the
first autoregressive chunk, FreeNoise's whole video) is sampled with the clip start's guidance
(``RunSettings.start_guidance_scale``, the scale FIFO's first clip uses), continuations with the
run's guidance. Every strategy is a :class:`LongVideo`: ``latents(frames)`` yields clean latents
``'c h w'`` in video order, ``boundaries(frames)`` names the latents where a new piece begins, and
``peak_bytes`` is the most latent memory it held at once (latents, noise and sums it keeps; the
model and its activations are not counted, as they are the same for every strategy).
"""

from __future__ import annotations

from typing import Any

from fifo_core.backbone import Backbone
from fifo_core.baselines.autoregressive import ChunkedAutoregressive
from fifo_core.baselines.clips import ClipDenoiser, IndependentClips, LongVideo
from fifo_core.baselines.freenoise import FreeNoiseStyle, fused_prediction, rescheduled_noise, window_starts
from fifo_core.config import PromptTimeline, RunConfig
from fifo_core.errors import ConfigError
from fifo_core.plugins import Plugins, default_plugins

STRATEGIES: dict[str, type[LongVideo]] = {
    "independent": IndependentClips,
    "autoregressive": ChunkedAutoregressive,
    "freenoise": FreeNoiseStyle,
}


def make_strategy(name: str, config: RunConfig, *, backbone: Backbone, plugins: Plugins | None = None, **options: Any) -> LongVideo:
    """Strategy ``name`` for ``config`` (resolved with the backbone's defaults, as a FIFO run's is)
    over the loaded ``backbone``; ``options`` go to the strategy (``known=``, ``stride=``)."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown long-video strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    plugins = plugins or default_plugins()
    spec = plugins.backbone(config.backbone)
    timeline = config.prompt if isinstance(config.prompt, PromptTimeline) else plugins.resolve_prompt(config.prompt)
    settings = config.resolve(spec.defaults, timeline if timeline is not None else PromptTimeline.single(config.prompt))
    return STRATEGIES[name](backbone, settings, **options)

__all__ = [
    "STRATEGIES",
    "ChunkedAutoregressive",
    "ClipDenoiser",
    "FreeNoiseStyle",
    "IndependentClips",
    "LongVideo",
    "fused_prediction",
    "make_strategy",
    "rescheduled_noise",
    "window_starts",
]

"""The Python API: load a backbone, iterate over frames, or run a configuration into sinks.

    from fifo_core.api import RunConfig, generate, iter_frames

    for frame in iter_frames(RunConfig(prompt="a red circle moving left", frames=16)):
        ...                                   # 'h w 3' uint8 numpy arrays, one at a time

    summary = generate(RunConfig(prompt="a red circle moving left", frames=200, sinks=["out.mp4"]))

Everything is checked (backbone name, settings, sink targets) before a backbone is loaded or an
output is created, so a bad configuration leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from fifo_core.backbone import Backbone, BackboneSpec
from fifo_core.config import PromptTimeline, RunConfig, RunSettings
from fifo_core.distributed import WindowGroup
from fifo_core.errors import ConfigError, SinkError
from fifo_core.events import FrameEvent, IterationEvent, RunSummary
from fifo_core.memory import check_run_fits
from fifo_core.plugins import Plugins, default_plugins
from fifo_core.sampling import FifoSampler
from fifo_core.sink import Sink, SinkFailure, SinkFanout, SinkSettings, SinkSpec, reserve_targets
from fifo_core.stopping import RunStopped, StopRequest

__all__ = [
    "FrameEvent",
    "PromptTimeline",
    "RunConfig",
    "RunSummary",
    "StopRequest",
    "generate",
    "iter_frames",
    "load_backbone",
    "make_sampler",
]


def load_backbone(name: str | None, options: dict[str, Any] | None = None, *, plugins: Plugins | None = None) -> Backbone:
    """Create the backbone registered as ``name`` (``None``: the default backbone) with its options."""
    return (plugins or default_plugins()).backbone(name).create(options)


def _timeline(config: RunConfig, plugins: Plugins) -> PromptTimeline:
    if isinstance(config.prompt, PromptTimeline):
        return config.prompt
    resolved = plugins.resolve_prompt(config.prompt)
    return resolved if resolved is not None else PromptTimeline.single(config.prompt)


def make_sampler(
    config: RunConfig,
    *,
    plugins: Plugins | None = None,
    backbone: Backbone | None = None,
    on_iteration: Callable[[IterationEvent], None] | None = None,
    group: WindowGroup | None = None,
) -> FifoSampler:
    """A :class:`FifoSampler` for ``config``; pass ``backbone`` to reuse a loaded one and
    ``group`` to share the windows with other processes."""
    plugins = plugins or default_plugins()
    spec = plugins.backbone(config.backbone)
    settings = config.resolve(spec.defaults, _timeline(config, plugins))
    return _sampler(backbone or spec.create(config.backbone_options), settings, on_iteration, group)


def _sampler(
    backbone: Backbone, settings: RunSettings, on_iteration: Callable[[IterationEvent], None] | None, group: WindowGroup | None
) -> FifoSampler:
    _check_fits(settings, backbone)
    return FifoSampler(backbone, settings, on_iteration=on_iteration, group=group)


def _check_fits(settings: RunSettings, backbone: Backbone) -> None:
    """Refuse a run that cannot fit in memory before the sampler allocates its queue."""
    windows = len(settings.layout.windows) * (1 if settings.guidance_scale == 1 else 2)
    rows = windows if settings.max_batch is None else min(windows, settings.max_batch)
    latent_shape = tuple(backbone.latent_shape(settings.height, settings.width))
    check_run_fits(backbone, latent_shape, settings.layout.length, rows, settings.layout.window)


def iter_frames(config: RunConfig, *, plugins: Plugins | None = None, backbone: Backbone | None = None) -> Iterator[np.ndarray]:
    """Decoded frames ``'h w 3'`` uint8 for ``config``: ``config.frames`` of them, or without end."""
    return make_sampler(config, plugins=plugins, backbone=backbone).frames(config.frames)


def _check_sinks(config: RunConfig, plugins: Plugins, settings: SinkSettings) -> list[tuple[SinkSpec, str]]:
    if not config.sinks:
        raise ConfigError("no output given; add --sink out.mp4 (or a folder/, or an rtmp:// URL)", field="sinks")
    chosen = []
    for target in config.sinks:
        spec = plugins.sink_for(target)
        try:
            spec.sink_class.check_target(target, settings)
        except SinkError as error:
            raise ConfigError(str(error), field="sinks") from None
        chosen.append((spec, target))
    return chosen


def _check_sinks_together(
    config: RunConfig, plugins: Plugins, settings: SinkSettings, group: WindowGroup | None
) -> list[tuple[SinkSpec, str]]:
    """:func:`_check_sinks` on every rank, and no rank goes on until all have checked: rank 0
    locks (and may create) the outputs right after, which a slower rank would otherwise see as
    another run's. A refusal on any rank is a refusal on all of them."""
    if group is None:
        return _check_sinks(config, plugins, settings)
    try:
        chosen, refusal = _check_sinks(config, plugins, settings), None
    except ConfigError as error:
        chosen, refusal = [], error
    if group.any(refusal is not None) and refusal is None:
        refusal = ConfigError("another rank refused the sinks; its error says why", field="sinks")
    if refusal is not None:
        raise refusal
    return chosen


def _stoppable(
    on_iteration: Callable[[IterationEvent], None], stop: StopRequest | None, group: WindowGroup | None
) -> Callable[[IterationEvent], None]:
    """``on_iteration``, then end the run if ``stop`` was requested: between model steps, the
    first point where no lock or buffer is half-updated. With ``group`` the ranks agree first, so
    they all stop after the same iteration (a rank that stopped alone would leave the others
    waiting for it in the next exchange of windows)."""
    if stop is None:
        return on_iteration

    def iteration_done(event: IterationEvent) -> None:
        on_iteration(event)
        requested = stop.is_set() if group is None else group.any(stop.is_set())
        if requested:
            raise RunStopped

    return iteration_done


def generate(
    config: RunConfig,
    *,
    plugins: Plugins | None = None,
    backbone: Backbone | None = None,
    on_frame: Callable[[FrameEvent], None] | None = None,
    on_sink_failure: Callable[[SinkFailure], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    group: WindowGroup | None = None,
    stop: StopRequest | None = None,
) -> RunSummary:
    """Run ``config`` into its sinks and return how it ended.

    ``stop`` (set from any thread, or by Ctrl-C inside ``stop.on_signals()``) ends the run after
    the current model step; so does a ``KeyboardInterrupt``. Either way every sink is flushed and
    closed and the summary says ``interrupted``. Other errors are re-raised after the sinks are
    closed.
    """
    plugins = plugins or default_plugins()
    if group is not None and stop is not None:
        group.answer_to(stop)  # told to stop, this rank does not wait for a rank that cannot answer
    spec: BackboneSpec = plugins.backbone(config.backbone)
    run = config.resolve(spec.defaults, _timeline(config, plugins))
    settings = SinkSettings(fps=run.fps, overwrite=config.overwrite)
    chosen = _check_sinks_together(config, plugins, settings, group)
    if group is not None and not group.is_main:
        chosen = []
    backbone = backbone or spec.create(config.backbone_options)
    sampler = _sampler(backbone, run, _stoppable(plugins.on_iteration, stop, group), group)

    summary = RunSummary(config=config)
    with stop.deferring() if stop is not None else contextlib.nullcontext():
        sinks: list[Sink] = [sink_spec.sink_class(target, settings) for sink_spec, target in chosen]
        try:
            reserve_targets(sinks)  # another run may have taken a target since the checks
        except SinkError as error:
            raise ConfigError(str(error), field="sinks") from None
        fanout = SinkFanout(sinks, on_failure=on_sink_failure)
        began = time.perf_counter()
        try:
            plugins.on_run_start(config=config, backbone=backbone)
            if on_ready is not None:
                on_ready()
            for frame in sampler.frames(config.frames):
                if chosen and not fanout.live_sinks:
                    raise SinkError("every sink has failed, so the run stops; see the errors above")
                fanout.write(frame)
                event = FrameEvent(summary.frames, frame, time.perf_counter() - began)
                summary.frames += 1
                plugins.on_frame(event)
                if on_frame is not None:
                    on_frame(event)
                if stop is not None and group is None:  # a group stops between iterations only, together
                    stop.raise_if_set()
        except KeyboardInterrupt:
            summary.interrupted = True
        except BaseException as error:
            summary.error = error
            raise
        finally:
            summary.sink_failures = fanout.close()
            summary.seconds = time.perf_counter() - began
            plugins.on_run_end(summary=summary)
    return summary

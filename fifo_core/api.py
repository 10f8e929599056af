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
from pathlib import Path
from typing import Any

import numpy as np

from fifo_core.backbone import Backbone, BackboneSpec
from fifo_core.config import PromptTimeline, RunConfig, RunSettings
from fifo_core.decoding import saves_state
from fifo_core.distributed import WindowGroup
from fifo_core.errors import ConfigError, SinkError
from fifo_core.events import FrameEvent, IterationEvent, RunSummary
from fifo_core.init_clip import check_can_encode, check_init_file, encode_init
from fifo_core.memory import check_run_fits
from fifo_core.plugins import Plugins, default_plugins
from fifo_core.run_loop import RunLoop, RunPlan
from fifo_core.sampling import FifoSampler
from fifo_core.sink import Sink, SinkFailure, SinkFanout, SinkSettings, SinkSpec, reserve_targets
from fifo_core.state import backbone_fingerprint, check_new_state_folder, check_same_backbone, load_state
from fifo_core.stopping import StopRequest

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
    "resume",
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
    sampler = FifoSampler(backbone, settings, on_iteration=on_iteration, group=group)
    if settings.init is not None:
        check_init_file(settings.init)
        _continue_clip(sampler, getattr(backbone, "name", type(backbone).__name__))
    return sampler


def _continue_clip(sampler: FifoSampler, name: str) -> None:
    """Fill ``sampler``'s queue from the clip its settings name (refused for a backbone without
    ``encode``): the video starts where the clip ends."""
    backbone, settings = sampler.backbone, sampler.settings
    check_can_encode(backbone, name, settings.init)
    sampler.init_latents = encode_init(backbone, settings.init, settings.height, settings.width, max(settings.layout.context, 1))


def _check_fits(settings: RunSettings, backbone: Backbone) -> None:
    """Refuse a run that cannot fit in memory before the sampler allocates its queue."""
    windows = len(settings.layout.windows) * (1 if settings.guidance_scale == 1 else 2)
    rows = windows if settings.max_batch is None else min(windows, settings.max_batch)
    latent_shape = tuple(backbone.latent_shape(settings.height, settings.width))
    check_run_fits(backbone, latent_shape, settings.layout.length, rows, settings.layout.window)


def iter_frames(config: RunConfig, *, plugins: Plugins | None = None, backbone: Backbone | None = None) -> Iterator[np.ndarray]:
    """Decoded frames ``'h w 3'`` uint8 for ``config``: ``config.frames`` of them, or without end."""
    return make_sampler(config, plugins=plugins, backbone=backbone).frames(config.frames)


# backbone options a resume may change: where and how it computes, not what run it is
RESUMABLE_OPTIONS = ("device", "dtype", "vae_dtype", "threads", "compile", "fp8", "channels_last")
DEFAULT_SAVE_EVERY = 50  # frames between saved states; a save costs a flush of the sinks and a small file


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
    state_dir: str | Path | None = None,
    save_every: int = DEFAULT_SAVE_EVERY,
) -> RunSummary:
    """Run ``config`` into its sinks and return how it ended.

    ``stop`` (set from any thread, or by Ctrl-C inside ``stop.on_signals()``) ends the run after
    the current model step; so does a ``KeyboardInterrupt``. Either way every sink is flushed and
    closed and the summary says ``interrupted``. Other errors are re-raised after the sinks are
    closed.

    With ``state_dir`` the run's state is saved there (:mod:`fifo_core.state`) when it starts,
    every ``save_every`` frames and when it stops (a stop, the frame limit, a model output with
    NaN or infinite values); :func:`resume` goes on from it. A sink that fails then stops the run,
    so that no output falls behind the saved state.
    """
    plugins = plugins or default_plugins()
    spec: BackboneSpec = plugins.backbone(config.backbone)
    timeline = _timeline(config, plugins)
    run = config.resolve(spec.defaults, timeline)
    if state_dir is not None:
        check_new_state_folder(state_dir)
        _check_save_every(save_every)
    if run.init is not None:
        check_init_file(run.init)
    plan = RunPlan(
        config=config.model_copy(update={"prompt": timeline}), backbone=spec.name, run=run,
        targets=[(target, None) for target in config.sinks], state_dir=None if state_dir is None else str(state_dir), save_every=save_every,
    )
    return _execute(plan, spec, config.backbone_options, plugins, backbone, on_frame, on_sink_failure, on_ready, group, stop)


def resume(
    state_dir: str | Path,
    *,
    frames: int | None = None,
    sinks: list[str] | None = None,
    backbone_options: dict[str, Any] | None = None,
    plugins: Plugins | None = None,
    backbone: Backbone | None = None,
    on_frame: Callable[[FrameEvent], None] | None = None,
    on_sink_failure: Callable[[SinkFailure], None] | None = None,
    on_ready: Callable[[], None] | None = None,
    group: WindowGroup | None = None,
    stop: StopRequest | None = None,
    save_every: int = DEFAULT_SAVE_EVERY,
) -> RunSummary:
    """Go on with the run saved in ``state_dir``: the frames after the saved ones, exactly those
    an uninterrupted run with the same seed (and thread count) makes, into the same outputs.

    Only the frame limit (``frames``, counted from the video's start), the outputs (``sinks``
    replaces the list: outputs of the saved run continue, new ones get the frames from here on)
    and the options in :data:`RESUMABLE_OPTIONS` may change; the state goes on being saved in
    ``state_dir``. ``backbone`` must be the backbone the run was made with.
    """
    _check_save_every(save_every)
    saved = load_state(state_dir)
    plugins = plugins or default_plugins()
    spec = plugins.backbone(saved.backbone)
    changed = sorted(set(backbone_options or {}) - set(RESUMABLE_OPTIONS))
    if changed:
        raise ConfigError(
            f"a resumed run keeps its backbone options; only {', '.join(RESUMABLE_OPTIONS)} may change, "
            f"got {', '.join(changed)}; start a new run to change the others",
            field="backbone_options",
        )
    if frames is not None and frames <= saved.frames:
        raise ConfigError(
            f"the saved run has made {saved.frames} frames already; --frames counts from the start of the video, "
            f"so ask for more than {saved.frames} (or leave it out to run until stopped)",
            field="frames",
        )
    if frames is None and saved.config.frames is not None and saved.frames >= saved.config.frames:
        raise ConfigError(
            f"the saved run is complete: it made the {saved.config.frames} frames it was asked for; "
            "to make the video longer, pass the new length with --frames",
            field="frames",
        )
    update: dict[str, Any] = {"frames": frames if frames is not None else saved.config.frames}
    update["backbone_options"] = saved.config.backbone_options | dict(backbone_options or {})
    if sinks is not None:
        update["sinks"] = list(sinks)
    config = RunConfig.parse(saved.config.model_dump() | update)
    run = config.resolve(spec.defaults)
    held = {position.target: position.frames for position in saved.sinks}
    plan = RunPlan(
        config=config, backbone=spec.name, run=run, targets=[(target, held.get(target)) for target in config.sinks],
        state_dir=str(state_dir), save_every=save_every, resumed=saved,
    )
    return _execute(plan, spec, config.backbone_options, plugins, backbone, on_frame, on_sink_failure, on_ready, group, stop)


def _check_save_every(save_every: int) -> None:
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise ConfigError(f"the state is saved every N frames with N >= 1, got {save_every!r}; pass e.g. --save-every 50", field="save_every")


def _check_outputs(plan: RunPlan, plugins: Plugins, settings: SinkSettings) -> list[tuple[SinkSpec, str, int | None]]:
    if not plan.targets:
        raise ConfigError("no output given; add --sink out.mp4 (or a folder/, or an rtmp:// URL)", field="sinks")
    chosen = []
    for target, held in plan.targets:
        spec = plugins.sink_for(target)
        try:
            if held is None:
                spec.sink_class.check_target(target, settings)
            else:
                spec.sink_class.check_continue(target, settings, held)
        except SinkError as error:
            raise ConfigError(str(error), field="sinks") from None
        chosen.append((spec, target, held))
    return chosen


def _check_outputs_together(plan: RunPlan, plugins: Plugins, settings: SinkSettings, group: WindowGroup | None) -> list[tuple[SinkSpec, str, int | None]]:
    """:func:`_check_outputs` on every rank, and no rank goes on until all have checked: rank 0
    locks (and may create) the outputs right after, which a slower rank would otherwise see as
    another run's. A refusal on any rank is a refusal on all of them."""
    if group is None:
        return _check_outputs(plan, plugins, settings)
    try:
        chosen, refusal = _check_outputs(plan, plugins, settings), None
    except ConfigError as error:
        chosen, refusal = [], error
    if group.any(refusal is not None) and refusal is None:
        refusal = ConfigError("another rank refused the sinks; its error says why", field="sinks")
    if refusal is not None:
        raise refusal
    return chosen


def _execute(
    plan: RunPlan,
    spec: BackboneSpec,
    backbone_options: dict[str, Any],
    plugins: Plugins,
    backbone: Backbone | None,
    on_frame: Callable[[FrameEvent], None] | None,
    on_sink_failure: Callable[[SinkFailure], None] | None,
    on_ready: Callable[[], None] | None,
    group: WindowGroup | None,
    stop: StopRequest | None,
) -> RunSummary:
    """Everything checked so far created nothing; here the backbone is loaded, checked against a
    saved state, the clip to continue encoded, and only then are the outputs created."""
    config, run, saved = plan.config, plan.run, plan.resumed
    if group is not None and stop is not None:
        group.answer_to(stop)  # told to stop, this rank does not wait for a rank that cannot answer
    settings = SinkSettings(fps=run.fps, overwrite=config.overwrite)
    chosen = _check_outputs_together(plan, plugins, settings, group)
    if group is not None and not group.is_main:
        chosen = []
    backbone = backbone or spec.create(backbone_options)
    _check_fits(run, backbone)
    should_stop = None if stop is None else (stop.is_set if group is None else lambda: group.any(stop.is_set()))
    sampler = FifoSampler(backbone, run, on_iteration=plugins.on_iteration, group=group, should_stop=should_stop)
    fingerprint = backbone_fingerprint(sampler)
    if saved is not None:
        check_same_backbone(saved, spec.name, fingerprint)
    if plan.state_dir is not None and not saves_state(backbone.frame_decoder()):
        raise ConfigError(
            f"backbone {spec.name!r} decodes with a stream that cannot save its state, so its runs cannot be saved; "
            "drop --state (docs/resume-and-continue.md lists the backbones that resume)",
            field="state",
        )
    if run.init is not None and saved is None:
        _continue_clip(sampler, spec.name)

    summary = RunSummary(config=config)
    with stop.deferring() if stop is not None else contextlib.nullcontext():
        sinks: list[Sink] = []
        for sink_spec, target, held in chosen:
            sink = sink_spec.sink_class(target, settings)
            if held is not None:
                sink.continue_from(held)
            sinks.append(sink)
        try:
            reserve_targets(sinks)  # another run may have taken a target since the checks
        except SinkError as error:
            raise ConfigError(str(error), field="sinks") from None
        fanout = SinkFanout(sinks, on_failure=on_sink_failure)
        run_loop = RunLoop(plan, sampler, fingerprint, fanout, sinks, group, summary, plugins, on_frame)
        try:
            plugins.on_run_start(config=config, backbone=backbone)
            if on_ready is not None:
                on_ready()
            run_loop.run()
        except KeyboardInterrupt:
            summary.interrupted = True
        except BaseException as error:
            summary.error = error
            raise
        finally:
            summary.sink_failures = fanout.close()
            summary.seconds = time.perf_counter() - run_loop.began
            plugins.on_run_end(summary=summary)
    return summary

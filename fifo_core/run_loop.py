"""One run's frames from the sampler to the sinks, with its state saved along the way.

:func:`fifo_core.api.generate` and :func:`fifo_core.api.resume` check everything and open the
outputs; :class:`RunLoop` then asks the sampler for clean latents, decodes them and hands the
frames to the sinks, and with a state folder saves the run (:mod:`fifo_core.state`) at the start,
every ``save_every`` frames, at the frame limit, when stopped and on a numerical fault.

The state is saved only where it is whole: between two iterations (the sampler's stop check and
numerical check are there, before the queue changes), with every latent handed out decoded (the
overlapping decoder drained) and every frame written by every sink (:meth:`SinkFanout.sync`).
Decoded frames not yet handed out (a latent that decodes to several frames, the frame limit
reached in the middle of one) are part of it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from fifo_core.backbone import FrameDecoder
from fifo_core.config import RunConfig, RunSettings
from fifo_core.decoding import BackgroundDecoder, decoder_state, frame_stream, load_decoder_state
from fifo_core.distributed import WindowGroup
from fifo_core.errors import NumericalError, SinkError
from fifo_core.events import CleanLatent, FrameEvent, RunSummary
from fifo_core.init_clip import init_frames
from fifo_core.plugins import Plugins
from fifo_core.sampling import FifoSampler
from fifo_core.sink import Sink, SinkFanout, redact_target
from fifo_core.state import RunState, SinkPosition, save_state
from fifo_core.stopping import RunStopped


@dataclass
class RunPlan:
    """What one call of :func:`generate` or :func:`resume` runs: the checked settings, the
    outputs with the frames each holds already (``None``: a new output), and the state to go on
    from."""

    config: RunConfig  # prompt resolved into its timeline: what a state saves
    backbone: str
    run: RunSettings
    targets: list[tuple[str, int | None]]
    state_dir: str | None
    save_every: int
    resumed: RunState | None = None


class RunLoop:
    """The frames of one run from latents to sinks, with the state saved along the way.

    The state is saved only where it is whole: between two iterations (the loop's own stop
    check and numerical check are there), with every latent handed out decoded (the overlapping
    decoder drained) and every frame written by every sink (:meth:`SinkFanout.sync`). Decoded
    frames not yet handed out are part of it.
    """

    def __init__(
        self, plan: RunPlan, sampler: FifoSampler, fingerprint: dict[str, Any], fanout: SinkFanout, sinks: list[Sink],
        group: WindowGroup | None, summary: RunSummary, plugins: Plugins, on_frame: Callable[[FrameEvent], None] | None,
    ) -> None:
        self.plan, self.sampler, self.fingerprint, self.fanout, self.sinks = plan, sampler, fingerprint, fanout, sinks
        self.group, self.summary, self.plugins, self.on_frame = group, summary, plugins, on_frame
        saved = plan.resumed
        self.frames = saved.frames if saved is not None else 0
        self.pending: collections.deque[np.ndarray] = collections.deque(saved.pending if saved is not None else [])
        self.decoder: FrameDecoder | None = None
        self.whole = False  # whether the sampler's position and the decoder are between two latents
        self.began = time.perf_counter()

    def run(self) -> None:
        plan, saved, limit = self.plan, self.plan.resumed, self.plan.config.frames
        if saved is not None:
            queue = saved.position.queue
            device = self.sampler.backbone.device
            queue.latents, queue.levels, queue.frame_ids = queue.latents.to(device), queue.levels.to(device), queue.frame_ids.to(device)
            position = saved.position
        else:
            position = self.sampler.start_position()
        self.sampler.position = position  # whole from here on: the first save comes before the first latent
        if saved is None and plan.run.init is not None and plan.run.init.include:
            for frame in init_frames(plan.run.init, plan.run.height, plan.run.width):
                self.deliver(frame)
        latents = self.sampler.latents(position)
        with frame_stream(self.sampler.backbone, plan.run.overlap_decode) as decoder:
            self.decoder = decoder
            if saved is not None:
                load_decoder_state(decoder, saved.decoder)
            self.whole = True
            try:
                self._frames(latents, decoder, limit)
            except (KeyboardInterrupt, NumericalError):  # RunStopped is a KeyboardInterrupt
                self.save_if_whole()  # here, while the overlapping decoder can still be drained
                raise

    def _frames(self, latents: Iterator[CleanLatent], decoder: FrameDecoder, limit: int | None) -> None:
        plan = self.plan
        if plan.state_dir is not None and plan.resumed is None:
            self.save()  # a run killed before its first periodic save resumes from here
        while limit is None or self.frames < limit:
            if self.pending:
                self.deliver(self.pending.popleft())
                self.frames += 1
                if plan.state_dir is not None and self.frames % plan.save_every == 0:
                    self.save()
                continue
            self.whole = False
            try:
                clean = next(latents)
            except (RunStopped, NumericalError):
                self.whole = True  # raised between iterations, before the queue changed
                raise
            self.pending.extend(decoder.decode(clean.latent))
            self.whole = True
        if plan.state_dir is not None:
            self.save()  # `resume --frames MORE` makes the video longer

    def deliver(self, frame: np.ndarray) -> None:
        if self.sinks and not self.fanout.live_sinks:
            raise SinkError("every sink has failed, so the run stops; see the errors above")
        if self.plan.state_dir is not None and self.fanout.failures:
            raise SinkError(self._stopped_for_failed_sink())
        self.fanout.write(frame)
        event = FrameEvent(self.summary.frames, frame, time.perf_counter() - self.began)
        self.summary.frames += 1
        self.plugins.on_frame(event)
        if self.on_frame is not None:
            self.on_frame(event)

    def _stopped_for_failed_sink(self) -> str:
        failed = ", ".join(redact_target(failure.target) for failure in self.fanout.failures)
        return (
            f"the run stops because {failed} failed (see above) and it is saved with --state; the state in "
            f"{self.plan.state_dir} from before the failure is kept: fix the cause, then `fifo-diffusion resume {self.plan.state_dir}`"
        )

    def save_if_whole(self) -> None:
        if self.plan.state_dir is not None and self.whole and self.decoder is not None:
            self.save()

    def save(self) -> None:
        """Save the run's state (rank 0 writes it; every rank drains its decoder alike)."""
        assert self.decoder is not None and self.sampler.position is not None
        if isinstance(self.decoder, BackgroundDecoder):
            self.pending.extend(self.decoder.drain())
        self.fanout.sync()
        if self.fanout.failures:
            return  # an output fell behind: the last state saved before the failure stays
        if self.group is not None and not self.group.is_main:
            return
        state = RunState(
            config=self.plan.config, backbone=self.plan.backbone, fingerprint=self.fingerprint, position=self.sampler.position,
            frames=self.frames, sinks=[SinkPosition(sink.target, sink.frames_written) for sink in self.sinks],
            decoder=decoder_state(self.decoder), pending=list(self.pending),
        )
        save_state(self.plan.state_dir, state)

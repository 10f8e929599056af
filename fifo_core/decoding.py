"""Decoding a stream of clean latents with a video VAE that compresses time.

A temporal VAE decodes clips, not single latents: its first latent gives one frame and every later
one ``per_latent`` frames, and each frame depends on the latents around it. FIFO hands out one
clean latent per step, so :class:`ChunkedClipDecoder` decodes small clips at the queue head: each
``chunk`` of new latents together with up to ``context`` earlier ones (and ``lookahead`` later
ones, for decoders that look ahead in time), keeping only the frames of the new latents. Memory
stays bounded by the clip length, however long the video runs.

:class:`BackgroundDecoder` runs any decoder on a thread of its own, so decoding overlaps denoising;
:func:`frame_stream` opens a backbone's decoder for one run, overlapping or not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from fifo_core.backbone import Backbone, FrameDecoder, to_uint8_frame
from fifo_core.errors import ConfigError


class ChunkedClipDecoder:
    """A :class:`~fifo_core.backbone.FrameDecoder` over ``decode_clip``.

    ``decode_clip`` takes latents ``'c t h w'`` (as the queue hands them out) and returns the
    video ``'3 T h w'`` in ``[-1, 1]`` with ``T = 1 + per_latent * (t - 1)``, as a whole-clip
    decode would. Output lags ``chunk + lookahead`` latents behind the queue head; :meth:`flush`
    decodes what is left at the end of a run. In total the first latent gives 1 frame and every
    later one ``per_latent``.
    """

    def __init__(
        self,
        decode_clip: Callable[[torch.Tensor], torch.Tensor],
        *,
        per_latent: int,
        context: int,
        lookahead: int = 0,
        chunk: int = 1,
    ) -> None:
        if context < 1 or lookahead < 0 or chunk < 1:
            raise ConfigError(
                f"decode_context must be >= 1, decode_lookahead >= 0 and decode_chunk >= 1; got {context}, {lookahead}, {chunk}. "
                "A context of at least one latent is needed because a clip's first latent decodes to a single frame",
                field="backbone_options",
            )
        self.decode_clip = decode_clip
        self.per_latent = per_latent
        self.context, self.lookahead, self.chunk = context, lookahead, chunk
        self._latents: list[torch.Tensor] = []  # kept latents; the first of them has index self._first
        self._first = 0
        self._emitted = 0  # latents whose frames were handed out

    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        self._latents.append(latent)
        received = self._first + len(self._latents)
        if received - self._emitted >= self.chunk + self.lookahead:
            return self._emit(self._emitted + self.chunk, received)
        return []

    def flush(self) -> list[np.ndarray]:
        received = self._first + len(self._latents)
        return self._emit(received, received) if received > self._emitted else []

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a resumed run needs to go on decoding as this one would: the latents kept for
        context and the counters (see :mod:`fifo_core.state`)."""
        state = {"first": torch.tensor(self._first), "emitted": torch.tensor(self._emitted)}
        if self._latents:
            state["latents"] = torch.stack(self._latents).cpu()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._first, self._emitted = int(state["first"]), int(state["emitted"])
        self._latents = list(state["latents"].unbind(0)) if "latents" in state else []

    @torch.no_grad()
    def _emit(self, until: int, available: int) -> list[np.ndarray]:
        """Frames of latents ``emitted .. until - 1``, decoded with the kept latents up to ``available``."""
        begin = max(self._first, self._emitted - self.context)
        clip = torch.stack(self._latents[begin - self._first : available - self._first], dim=1)
        video = self.decode_clip(clip)  # '3 T h w', T = 1 + per_latent * (latents - 1)
        # Latent k of the clip (k >= 1) owns frames per_latent*(k-1)+1 .. per_latent*k; latent 0 owns frame 0.
        start = 0 if self._emitted == 0 else self.per_latent * (self._emitted - begin) - (self.per_latent - 1)
        stop = self.per_latent * (until - 1 - begin) + 1
        frames = [to_uint8_frame(video[:, k]) for k in range(start, stop)]
        self._emitted = until
        keep_from = max(0, self._emitted - self.context)
        del self._latents[: keep_from - self._first]
        self._first = keep_from
        return frames


class BackgroundDecoder:
    """Runs another :class:`~fifo_core.backbone.FrameDecoder` on a thread of its own, so decoding
    the latest clean latent overlaps the next denoising iteration.

    :meth:`decode` hands the latent to the thread and returns the frames of the latent before it
    (waiting for them if they are not ready), so frames come out in order, one latent late; on CUDA
    the thread decodes on its own stream, after the stream that made the latent has finished it.
    :meth:`flush` waits for everything and returns the rest. Errors of the decoder are raised in
    the caller's thread.
    """

    def __init__(self, decoder: FrameDecoder, device: torch.device) -> None:
        self.decoder = decoder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fifo-decode")
        self._pending: Future | None = None
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def _decode_on_stream(self, latent: torch.Tensor, made: Any) -> Sequence[np.ndarray]:
        if self._stream is None:
            return self.decoder.decode(latent)
        with torch.cuda.stream(self._stream):
            if made is not None:
                self._stream.wait_event(made)
            return self.decoder.decode(latent)

    def decode(self, latent: torch.Tensor) -> list[np.ndarray]:
        made = None
        if self._stream is not None and latent.is_cuda:
            made = torch.cuda.Event()
            made.record()  # on the stream that computed the latent
            latent.record_stream(self._stream)
        ready = self._collect()
        self._pending = self._executor.submit(self._decode_on_stream, latent, made)
        return ready

    def _collect(self) -> list[np.ndarray]:
        if self._pending is None:
            return []
        pending, self._pending = self._pending, None
        return list(pending.result())

    def flush(self) -> list[np.ndarray]:
        frames = self._collect()
        frames += list(self._executor.submit(self.decoder.flush).result())
        return frames

    def drain(self) -> list[np.ndarray]:
        """Wait for the decode in flight and return its frames, so that every latent handed in so
        far is decoded (the point at which the decoder's state can be saved)."""
        return self._collect()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The wrapped decoder's state; call :meth:`drain` first."""
        if self._pending is not None:
            raise RuntimeError("a decode is still in flight; drain() the decoder before saving its state")
        return decoder_state(self.decoder)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        load_decoder_state(self.decoder, state)

    def close(self) -> None:
        """Stop the thread; a decode still running is waited for, its frames dropped."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def saves_state(decoder: FrameDecoder) -> bool:
    """Whether ``decoder`` can save and restore its state (``state_dict``/``load_state_dict``),
    which a run saved with ``--state`` needs to resume exactly."""
    inner = decoder.decoder if isinstance(decoder, BackgroundDecoder) else decoder
    return callable(getattr(inner, "state_dict", None)) and callable(getattr(inner, "load_state_dict", None))


def decoder_state(decoder: FrameDecoder) -> dict[str, torch.Tensor]:
    """``decoder``'s state as tensors (CPU), ready for a state file."""
    return {key: value.detach().cpu() for key, value in decoder.state_dict().items()}  # type: ignore[attr-defined]


def load_decoder_state(decoder: FrameDecoder, state: dict[str, torch.Tensor]) -> None:
    decoder.load_state_dict(state)  # type: ignore[attr-defined]


@contextmanager
def frame_stream(backbone: Backbone, overlap: bool | None = None) -> Iterator[FrameDecoder]:
    """The backbone's decoder for one run; with ``overlap`` on a :class:`BackgroundDecoder`: the
    same frames, one latent later. ``None`` overlaps on CUDA backbones only: a thread of its own
    pays where the model runs on a GPU, while on CPUs decoding and the model share the same cores."""
    decoder = backbone.frame_decoder()
    if backbone.device.type == "cuda" if overlap is None else overlap:
        decoder = BackgroundDecoder(decoder, backbone.device)
    try:
        yield decoder
    finally:
        if isinstance(decoder, BackgroundDecoder):
            decoder.close()

"""The latent queue: slots ordered head to tail, each holding a latent, its level and its frame id.

Layout (see :mod:`fifo_core.partition`): ``context`` lookahead slots, then ``S`` denoised slots.
In steady state slot ``context + i`` sits at level ``i + 1`` and the lookahead slots at level 0.

One iteration (driven by :mod:`fifo_core.sampling`):

1. every *moving* denoised slot goes down one level (:meth:`moving`);
2. if the head (slot ``context``) is now clean it is dequeued: all slots shift one towards the
   head, so the dequeued frame becomes the newest lookahead slot and the oldest one is dropped,
   and fresh noise enters at the tail at level ``S`` (:meth:`shift_in`).

A slot moves when it is above level 0 and strictly noisier than the denoised slot before it.
In steady state that is every denoised slot. Started from pure noise (every slot at level ``S``),
the same rule is a warm-up ramp: the head starts moving at once, each following slot one
iteration later, so after ``S`` iterations the queue reaches the diagonal with every frame
having passed through every level exactly once; no model call is spent on mislabelled input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LatentQueue:
    """``latents``: ``'L c h w'``; ``levels`` and ``frame_ids``: ``(L,)`` long (negative frame
    ids mark warm-up frames that are never handed out)."""

    latents: torch.Tensor
    levels: torch.Tensor
    frame_ids: torch.Tensor
    context: int
    num_levels: int

    def __post_init__(self) -> None:
        length = self.latents.shape[0]
        if self.levels.shape != (length,) or self.frame_ids.shape != (length,):
            raise ValueError("latents, levels and frame_ids must have the same number of slots")
        if length != self.context + self.num_levels:
            raise ValueError(f"a queue of {self.context} + {self.num_levels} slots holds {length}")

    @property
    def head(self) -> int:
        """Index of the first denoised slot."""
        return self.context

    def moving(self) -> torch.Tensor:
        """Boolean ``(L,)`` mask of the slots that go down one level this iteration."""
        denoised = self.levels[self.context :]
        previous = torch.cat([denoised.new_full((1,), -1), denoised[:-1]])
        mask = torch.zeros_like(self.levels, dtype=torch.bool)
        mask[self.context :] = (denoised > 0) & (denoised > previous)
        return mask

    def head_is_clean(self) -> bool:
        return int(self.levels[self.context]) == 0

    def shift_in(self, latent: torch.Tensor, frame_id: int) -> tuple[int, torch.Tensor]:
        """Dequeue the clean head and enqueue ``latent`` (``'c h w'``) at level ``S``.

        Returns the dequeued ``(frame_id, latent)``. The tensors are replaced, never grown.
        """
        if not self.head_is_clean():
            raise RuntimeError(
                f"the head slot is at level {int(self.levels[self.context])}, not 0; only clean frames leave the queue"
            )
        dequeued = (int(self.frame_ids[self.context]), self.latents[self.context].clone())
        self.latents = torch.cat([self.latents[1:], latent.to(self.latents)[None]])
        self.levels = torch.cat([self.levels[1:], self.levels.new_full((1,), self.num_levels)])
        self.frame_ids = torch.cat([self.frame_ids[1:], self.frame_ids.new_full((1,), frame_id)])
        return dequeued

    def in_steady_state(self) -> bool:
        expected = torch.arange(1, self.num_levels + 1, device=self.levels.device)
        return bool((self.levels[self.context :] == expected).all()) and bool((self.levels[: self.context] == 0).all())

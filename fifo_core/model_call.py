"""The model call as the loop makes it: guided, cut into chunks, shared over ranks.

The loop asks for the output of some windows, latents ``'b c f h w'`` at per-frame timesteps
``'b f'`` with one prompt per window. Here that becomes backbone calls:

* classifier-free guidance: with a scale ``g`` other than 1 every window goes twice, the
  conditional rows first, then the negative prompt's, and the output is
  ``uncond + g (cond - uncond)``; each row carries a :class:`~fifo_core.backbone.Row` saying
  which window it is and which half;
* chunks: ``max_batch`` caps the rows per backbone call. It is a memory cap and changes nothing
  else, because rows are independent (the row contract, :mod:`fifo_core.backbone`);
* ranks: with a :class:`~fifo_core.distributed.WindowGroup` each process evaluates a share of
  the windows and the outputs are exchanged.

Each prompt is encoded once and kept for the run.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from fifo_core.backbone import Backbone, Row
from fifo_core.distributed import WindowGroup


class GuidedModel:
    """The backbone behind guidance, ``max_batch`` chunks and, with ``group``, rank sharing."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        guidance_scale: float,
        negative_prompt: str = "",
        max_batch: int | None = None,
        group: WindowGroup | None = None,
    ) -> None:
        self.backbone = backbone
        self.guidance_scale = guidance_scale
        self.negative_prompt = negative_prompt
        self.max_batch = max_batch
        self.group = group
        self.conditioning: dict[str, Any] = {}
        # The Row of each row goes only to a backbone whose predict asks for it.
        self._takes_rows = "rows" in inspect.signature(backbone.predict).parameters

    def encode(self, prompt: str) -> Any:
        if prompt not in self.conditioning:
            self.conditioning[prompt] = self.backbone.encode_prompt(prompt)
        return self.conditioning[prompt]

    def rows(self, windows: int) -> int:
        """Backbone rows that ``windows`` windows take (over all ranks): two each with guidance."""
        return windows * (2 if self.guidance_scale != 1.0 else 1)

    def windows(self, latents: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """The guided output of every window, shared out over the group's ranks."""
        if self.group is None:
            return self(latents, timesteps, prompts)
        mine = self.group.my_rows(len(prompts))
        if mine:
            output = self(latents[mine], timesteps[mine], [prompts[row] for row in mine], groups=mine)
        else:
            output = latents[:0].float()
        return self.group.gather_rows(output, len(prompts))

    def __call__(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        prompts: list[str],
        guidance_scale: float | None = None,
        groups: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Output ``'b c f h w'`` for windows ``latents`` ``'b c f h w'`` at ``timesteps``
        ``'b f'``, guided with ``guidance_scale`` (the run's by default). ``groups`` numbers the
        windows (their place in the model step; ``0..b-1`` by default)."""
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        guided = scale != 1.0
        conditioning = [self.encode(prompt) for prompt in prompts]
        groups = range(len(prompts)) if groups is None else groups
        rows = [Row(group, "conditional" if guided else "unguided", prompt) for group, prompt in zip(groups, conditioning)]
        if guided:
            rows += [Row(group, "unconditional", prompt) for group, prompt in zip(groups, conditioning)]
            conditioning = conditioning + [self.encode(self.negative_prompt)] * len(prompts)
            latents, timesteps = torch.cat([latents, latents]), torch.cat([timesteps, timesteps])
        output = self._in_chunks(latents, timesteps, conditioning, rows)
        if not guided:
            return output
        conditional, unconditional = output.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    def _in_chunks(self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: list[Any], rows: list[Row]) -> torch.Tensor:
        count = latents.shape[0]
        chunk = count if self.max_batch is None else self.max_batch
        outputs = []
        with torch.no_grad():  # sampling never needs gradients; without this, activations are kept
            for first in range(0, count, chunk):
                part = slice(first, first + chunk)
                extra = {"rows": rows[part]} if self._takes_rows else {}
                outputs.append(self.backbone.predict(latents[part], timesteps[part], conditioning[part], **extra).float())
        return torch.cat(outputs)

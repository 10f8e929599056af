"""Per-frame timesteps for diffusers video U-Nets that accept one timestep per sample.

``UNet3DConditionModel`` (zeroscope, ModelScope) and ``UNetMotionModel`` (AnimateDiff) embed one
timestep per sample, repeat the embedding over the ``f`` frames and hand it, as ``temb`` with
``(b f)`` rows, to their ResNet blocks, the only layers that consume it. The spatial layers already
run frame by frame, so FIFO needs only that each of those ``(b f)`` rows be the embedding of its
own frame's timestep.

:class:`PerFrameTimeEmbedding` does that without touching the model's ``forward``:

1. before the call, it computes the embedding of every frame with the model's own ``time_proj``
   and ``time_embedding``, one frame position at a time (``b`` rows per call, the same shape the
   model uses, so equal timesteps give bit-identical embeddings), and lays them out ``(b f)``;
2. a forward pre-hook on every ResNet block (every module with a ``time_emb_proj``) swaps the
   repeated ``temb`` it receives for the per-frame one.

Outside :meth:`PerFrameTimeEmbedding.active` the hooks do nothing, so the model stays usable as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from fifo_core.errors import PluginError


class PerFrameTimeEmbedding:
    """Installs the per-frame time-embedding hooks on ``unet`` (once; see the module notes)."""

    def __init__(self, unet: torch.nn.Module) -> None:
        for needed in ("time_proj", "time_embedding"):
            if not hasattr(unet, needed):
                raise PluginError(
                    f"{type(unet).__name__} has no {needed!r}; the per-frame timestep shim supports U-Nets whose "
                    "time embedding is time_proj -> time_embedding (UNet3DConditionModel, UNetMotionModel)"
                )
        if getattr(unet.config, "addition_embed_type", None):
            raise PluginError(
                f"{type(unet).__name__} adds a {unet.config.addition_embed_type!r} embedding to the time embedding "
                "(SDXL-style); the per-frame timestep shim supports plain time embeddings only"
            )
        self.unet = unet
        self._embedding: torch.Tensor | None = None
        self.consumers = [module for module in unet.modules() if hasattr(module, "time_emb_proj")]
        if not self.consumers:
            raise PluginError(f"{type(unet).__name__} has no ResNet blocks with a time_emb_proj to give per-frame embeddings to")
        self._handles = [module.register_forward_pre_hook(self._swap, with_kwargs=True) for module in self.consumers]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def embed(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Time embeddings ``'(b f) d'`` for ``timesteps`` ``'b f'``."""
        unet = self.unet
        columns = []
        for frame in range(timesteps.shape[1]):
            projected = unet.time_proj(timesteps[:, frame].contiguous()).to(dtype=unet.dtype)
            columns.append(unet.time_embedding(projected, None))
        return torch.stack(columns, dim=1).flatten(0, 1)

    @contextmanager
    def active(self, timesteps: torch.Tensor) -> Iterator[None]:
        """Within the block, the U-Net's ResNets see the embedding of each frame's own timestep."""
        self._embedding = self.embed(timesteps)
        try:
            yield
        finally:
            self._embedding = None

    def _swap(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        if self._embedding is None:
            return None
        given = args[1] if len(args) > 1 else kwargs.get("temb")
        if given is None:
            return None
        if given.shape != self._embedding.shape:
            raise PluginError(
                f"{type(module).__name__} received a time embedding of shape {tuple(given.shape)}, but the per-frame "
                f"shim prepared {tuple(self._embedding.shape)}; this U-Net layout is not supported by the shim"
            )
        embedding = self._embedding.to(given.dtype)
        if len(args) > 1:
            return (args[0], embedding, *args[2:]), kwargs
        return args, {**kwargs, "temb": embedding}

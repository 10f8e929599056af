"""VideoCrafter's 3D U-Net, taking one timestep per frame.

Notation:

    b, f       clips in the batch, frames per clip
    t          diffusion timesteps, ``'b f'`` (one per frame) or ``'b'`` (one per clip)
    emb        time embedding MLP(sinusoid(t)) (+ MLP(sinusoid(fps)) when fps-conditioned)

The original computes ``emb`` once per clip and repeats it over the clip's frames. Every layer that
reads ``emb`` (the ResBlocks) works on frames folded into the batch, ``'(b f) c h w'``, so computing
``emb`` per frame instead is all FIFO's diagonal denoising needs. A ``'b'`` timestep takes the
original's path, so with all frames at one timestep the two are the same computation (tested).

Layer layout, mirrored in the checkpoint keys (``input_blocks.N.M``, ``middle_block.M``,
``output_blocks.N.M``, ``init_attn.0``, ``temopral_conv`` spelled as the original spells it):
each level has ``num_res_blocks`` stages of [ResBlock, SpatialTransformer, TemporalTransformer]
(transformers only at ``attention_resolutions``), then a strided-conv Downsample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fifo_videocrafter.config import UNetConfig
from fifo_videocrafter.layers import GroupNorm32, SpatialTransformer, TemporalTransformer, timestep_embedding


class TemporalConvBlock(nn.Module):
    """Four (3, 1, 1) convolutions over time with a residual connection (from ModelScope)."""

    def __init__(self, channels: int) -> None:
        super().__init__()

        def stage(first: bool) -> nn.Sequential:
            conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
            layers = [GroupNorm32(32, channels, eps=1e-5), nn.SiLU()] + ([] if first else [nn.Identity()])
            return nn.Sequential(*layers, conv)

        self.conv1 = stage(first=True)
        self.conv2 = stage(first=False)
        self.conv3 = stage(first=False)
        self.conv4 = stage(first=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``'b c f h w'``."""
        return self.conv4(self.conv3(self.conv2(self.conv1(x)))) + x


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int, temporal_conv: bool) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels), nn.SiLU(), nn.Identity(), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels)  # sic: the checkpoint's spelling

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: ``'(b f) c h w'``; ``emb``: ``'(b f) e'``, a row per frame."""
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if hasattr(self, "temopral_conv"):
            batch_frames, channels, height, width = h.shape
            clips = h.reshape(batch_frames // frames, frames, channels, height, width).transpose(1, 2)
            h = self.temopral_conv(clips).transpose(1, 2).reshape(batch_frames, channels, height, width)
        return h


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """Layers run in order, each given what it needs (the original's ``TimestepEmbedSequential``)."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, frames)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, TemporalTransformer):
                x = layer(x, frames)
            else:
                x = layer(x)
        return x


class UNet3D(nn.Module):
    """Noise prediction ``'b c f h w'`` for latents ``'b c f h w'``."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        emb_dim = c.model_channels * 4
        relative = c.temporal_length if c.relative_position else None
        self.time_embed = nn.Sequential(nn.Linear(c.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if c.fps_cond:
            self.fps_embedding = nn.Sequential(nn.Linear(c.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def transformers(channels: int) -> list[nn.Module]:
            heads = channels // c.num_head_channels
            return [
                SpatialTransformer(channels, heads, c.num_head_channels, c.transformer_depth, c.context_dim, c.use_linear),
                TemporalTransformer(channels, heads, c.num_head_channels, c.transformer_depth, c.use_linear, relative),
            ]

        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(c.in_channels, c.model_channels, 3, padding=1)])])
        if c.addition_attention:
            # 8 heads of num_head_channels whatever the width, 1x1-conv projections (as the original).
            self.init_attn = Stage(
                [TemporalTransformer(c.model_channels, 8, c.num_head_channels, c.transformer_depth, False, relative)]
            )
        skip_channels = [c.model_channels]
        channels = c.model_channels
        downsampling = 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(channels, emb_dim, mult * c.model_channels, c.temporal_conv)]
                channels = mult * c.model_channels
                if downsampling in c.attention_resolutions:
                    layers += transformers(channels)
                self.input_blocks.append(Stage(layers))
                skip_channels.append(channels)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(channels)]))
                skip_channels.append(channels)
                downsampling *= 2

        self.middle_block = Stage(
            [ResBlock(channels, emb_dim, channels, c.temporal_conv), *transformers(channels),
             ResBlock(channels, emb_dim, channels, c.temporal_conv)]
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for index in range(c.num_res_blocks + 1):
                layers = [ResBlock(channels + skip_channels.pop(), emb_dim, mult * c.model_channels, c.temporal_conv)]
                channels = mult * c.model_channels
                if downsampling in c.attention_resolutions:
                    layers += transformers(channels)
                if level and index == c.num_res_blocks:
                    layers.append(Upsample(channels))
                    downsampling //= 2
                self.output_blocks.append(Stage(layers))

        self.out = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(c.model_channels, c.out_channels, 3, padding=1))

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def embedding(self, timesteps: torch.Tensor, fps: torch.Tensor | None, frames: int) -> torch.Tensor:
        """Time (+ fps) embedding ``'(b f) e'``; ``timesteps`` ``'b'`` or ``'b f'``, ``fps`` ``'b'``.

        Per-frame timesteps are embedded one frame column at a time, so every MLP call sees the
        same ``b`` rows as the per-clip path: with all frames at one timestep the result is
        bitwise the original's (a larger matmul could round differently).
        """
        channels = self.config.model_channels
        fps_emb = None
        if self.config.fps_cond:
            if fps is None:
                raise ValueError("this U-Net is fps-conditioned; pass fps (VideoCrafter2 samples at 8 to 28)")
            fps_emb = self.fps_embedding(timestep_embedding(fps, channels).to(self.dtype))

        def embed(steps: torch.Tensor) -> torch.Tensor:
            emb = self.time_embed(timestep_embedding(steps, channels).to(self.dtype))
            return emb if fps_emb is None else emb + fps_emb

        if timesteps.dim() == 1:
            return embed(timesteps).repeat_interleave(frames, dim=0)
        columns = [embed(timesteps[:, frame]) for frame in range(frames)]
        return torch.stack(columns, dim=1).flatten(0, 1)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, fps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x``: ``'b c f h w'``; ``timesteps``: ``'b f'`` or ``'b'``; ``context``: ``'b l d'``; ``fps``: ``'b'``."""
        batch, _, frames, height, width = x.shape
        if timesteps.dim() == 2 and tuple(timesteps.shape) != (batch, frames):
            raise ValueError(f"per-frame timesteps must be 'b f' = {(batch, frames)}, got {tuple(timesteps.shape)}")
        emb = self.embedding(timesteps, fps, frames)
        context = context.to(self.dtype).repeat_interleave(frames, dim=0)
        h = x.to(self.dtype).transpose(1, 2).reshape(batch * frames, -1, height, width)
        skips = []
        for index, stage in enumerate(self.input_blocks):
            h = stage(h, emb, context, frames)
            if index == 0 and hasattr(self, "init_attn"):
                h = self.init_attn(h, emb, context, frames)
            skips.append(h)
        h = self.middle_block(h, emb, context, frames)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, frames)
        out = self.out(h)
        return out.reshape(batch, frames, -1, height, width).transpose(1, 2)

"""The Stable-Diffusion-style KL autoencoder VideoCrafter uses, one frame at a time.

Keys mirror ``first_stage_model.*``: ``encoder.down.N.block.M``, ``decoder.up.N.block.M``,
``decoder.mid.attn_1``, ``quant_conv``, ``post_quant_conv``. Attention only in the middle
blocks; GroupNorm eps 1e-6. The encoder is built (and loaded) too, so the checkpoint loads
strictly, although text-to-video only decodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fifo_videocrafter.config import VaeConfig
from fifo_videocrafter.layers import GroupNorm32


def _norm(channels: int) -> nn.Module:
    return GroupNorm32(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``h w`` positions, 1x1-conv projections."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        q, k, v = (conv(h).flatten(2).transpose(1, 2)[:, None] for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(batch, channels, height, width))


class _Middle(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    """The ResnetBlocks of one resolution and the resampling after them (if any)."""

    def __init__(self, blocks: list[nn.Module], resample: nn.Module | None, name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList()
        if resample is not None:
            setattr(self, name, resample)


class _Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # asymmetric padding, as the original


class _Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Encoder(nn.Module):
    def __init__(self, c: VaeConfig) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(c.in_channels, c.ch, 3, padding=1)
        self.down = nn.ModuleList()
        channels = c.ch
        for level, mult in enumerate(c.ch_mult):
            blocks = []
            for _ in range(c.num_res_blocks):
                blocks.append(ResnetBlock(channels, c.ch * mult))
                channels = c.ch * mult
            last = level == len(c.ch_mult) - 1
            self.down.append(_Level(blocks, None if last else _Downsample(channels), "downsample"))
        self.mid = _Middle(channels)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, 2 * c.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, c: VaeConfig) -> None:
        super().__init__()
        channels = c.ch * c.ch_mult[-1]
        self.conv_in = nn.Conv2d(c.z_channels, channels, 3, padding=1)
        self.mid = _Middle(channels)
        levels: list[nn.Module] = []
        for level in reversed(range(len(c.ch_mult))):
            blocks = []
            for _ in range(c.num_res_blocks + 1):
                blocks.append(ResnetBlock(channels, c.ch * c.ch_mult[level]))
                channels = c.ch * c.ch_mult[level]
            levels.insert(0, _Level(blocks, _Upsample(channels) if level else None, "upsample"))
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(channels)
        self.conv_out = nn.Conv2d(channels, c.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * config.z_channels, 2 * config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``'n 3 H W'`` in about ``[-1, 1]`` from VAE latents ``'n c h w'`` (not yet scaled)."""
        return self.decoder(self.post_quant_conv(z))

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean ``'n c h w'`` of images ``'n 3 H W'``."""
        return self.quant_conv(self.encoder(x)).chunk(2, dim=1)[0]

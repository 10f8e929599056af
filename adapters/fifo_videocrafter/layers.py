"""Building blocks shared by VideoCrafter's U-Net: normalisation, attention and transformers.

Module and parameter names mirror the original checkpoint's keys (``to_q``, ``proj_in``,
``transformer_blocks.0.attn1``, ...), so a checkpoint loads into these modules unchanged.

Shapes: ``'(b f) c h w'`` is a batch of ``b`` clips of ``f`` frames with the frames folded into
the batch, as spatial layers see them; temporal layers unfold them again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# CUDA attention kernels put the batch in one grid dimension of at most 65,535 blocks.
_MAX_ATTENTION_BATCH = 32768


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (as the original's ``normalization``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).to(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``'n dim'`` of ``n`` (possibly fractional) timesteps, cosines first."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class RelativePosition(nn.Module):
    """A learned table of ``2 * max_distance + 1`` vectors, one per clipped frame distance."""

    def __init__(self, num_units: int, max_distance: int) -> None:
        super().__init__()
        self.max_distance = max_distance
        self.embeddings_table = nn.Parameter(torch.zeros(2 * max_distance + 1, num_units))

    def forward(self, length_q: int, length_k: int) -> torch.Tensor:
        """``'q k d'``: the vector for the distance from each query to each key."""
        device = self.embeddings_table.device
        distance = torch.arange(length_k, device=device)[None, :] - torch.arange(length_q, device=device)[:, None]
        return self.embeddings_table[distance.clamp(-self.max_distance, self.max_distance) + self.max_distance]


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, _ = x.shape
    return x.reshape(batch, tokens, heads, -1).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head attention of queries ``'b n c'`` over a context ``'b m d'`` (itself when absent).

    With ``relative_length`` the scores and the output also get the relative-position terms of
    VideoCrafter1's temporal attention (Shaw et al. 2018): ``s_ij += q_i . K_(j-i)`` and
    ``o_i += sum_j p_ij V_(j-i)``.
    """

    def __init__(
        self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, relative_length: int | None = None
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))
        self.relative = relative_length is not None
        if self.relative:
            self.relative_position_k = RelativePosition(dim_head, relative_length)
            self.relative_position_v = RelativePosition(dim_head, relative_length)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q, k, v = (_split_heads(t, self.heads) for t in (self.to_q(x), self.to_k(context), self.to_v(context)))
        if self.relative:
            out = self._relative_attention(q, k, v)
        else:
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(q[i : i + _MAX_ATTENTION_BATCH], k[i : i + _MAX_ATTENTION_BATCH], v[i : i + _MAX_ATTENTION_BATCH])
                    for i in range(0, q.shape[0], _MAX_ATTENTION_BATCH)
                ]
            )
        batch, _, tokens, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(batch, tokens, -1))

    def _relative_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``q, k, v``: ``'b h t d'`` over a few frames, so the scores are small enough to hold."""
        length_q, length_k = q.shape[2], k.shape[2]
        scores = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale
        scores = scores + torch.einsum("bhid,ijd->bhij", q, self.relative_position_k(length_q, length_k)) * self.scale
        weights = scores.softmax(dim=-1)
        out = torch.einsum("bhij,bhjd->bhid", weights, v)
        return out + torch.einsum("bhij,ijd->bhid", weights, self.relative_position_v(length_q, length_k))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention (self-attention again without a context), GEGLU feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None, relative_length: int | None = None) -> None:
        super().__init__()
        self.attn1 = Attention(dim, None, heads, dim_head, relative_length)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head, relative_length)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


def _projection(in_dim: int, out_dim: int, use_linear: bool, conv: type[nn.Module]) -> nn.Module:
    return nn.Linear(in_dim, out_dim) if use_linear else conv(in_dim, out_dim, kernel_size=1)


def _apply_projection(projection: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A linear map over the last axis of ``x``; 1x1 convolutions are applied as the same map."""
    if isinstance(projection, nn.Linear):
        return projection(x)
    return F.linear(x, projection.weight.flatten(1), projection.bias)


class SpatialTransformer(nn.Module):
    """Attention over the ``h w`` tokens of each frame, with cross-attention to the text."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int, use_linear: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        self.proj_in = _projection(channels, inner, use_linear, nn.Conv2d)
        self.transformer_blocks = nn.ModuleList(TransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth))
        self.proj_out = _projection(inner, channels, use_linear, nn.Conv2d)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x``: ``'(b f) c h w'``; ``context``: ``'(b f) l d'``."""
        frames, channels, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # '(b f) (h w) c'
        tokens = _apply_projection(self.proj_in, tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        tokens = _apply_projection(self.proj_out, tokens)
        return tokens.transpose(1, 2).reshape(frames, channels, height, width) + x


class TemporalTransformer(nn.Module):
    """Self-attention over the frames of each clip, separately at every pixel position.

    Its GroupNorm normalises over the whole clip (all frames together), as the original does.
    """

    def __init__(
        self, channels: int, heads: int, dim_head: int, depth: int, use_linear: bool, relative_length: int | None
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm32(32, channels, eps=1e-6)
        self.proj_in = _projection(channels, inner, use_linear, nn.Conv1d)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, dim_head, None, relative_length) for _ in range(depth)
        )
        self.proj_out = _projection(inner, channels, use_linear, nn.Conv1d)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``x``: ``'(b f) c h w'`` with ``f = frames``."""
        batch_frames, channels, height, width = x.shape
        batch = batch_frames // frames
        clips = x.reshape(batch, frames, channels, height, width).transpose(1, 2)  # 'b c f h w'
        tokens = self.norm(clips).permute(0, 3, 4, 2, 1).reshape(batch * height * width, frames, channels)
        tokens = _apply_projection(self.proj_in, tokens)  # '(b h w) f c'
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = _apply_projection(self.proj_out, tokens)
        tokens = tokens.reshape(batch, height, width, frames, channels).permute(0, 3, 4, 1, 2)
        return tokens.reshape(batch_frames, channels, height, width) + x

"""The default model: a small text tower over OpenCLIP's tokenizer and a tiny video U-Net in pixel space.

Text tower: prompts are tokenized by open-clip-torch's own BPE tokenizer (bundled with the
package). Only the token ids of the shapes grammar get their own embedding row; any other token
shares one "unknown" row, which keeps the table a few kilobytes instead of OpenCLIP's 49,408 rows.
An OpenCLIP ``Transformer`` (causal, as CLIP's text tower) runs over the tokens and the feature
at the end-of-text token is the prompt's embedding ``'b d'``.

Denoiser: clips ``'b 3 f 32 32'`` are folded to frames and pixel-unshuffled to ``'(b f) 12 16 16'``;
a two-level U-Net (16x16 and 8x8) of residual blocks with circular padding (the world is a torus),
each followed by a temporal convolution over the frames and, in the shipped model, a 3x3x3
space-time convolution, predicts ``v`` (Salimans & Ho 2022). Every frame gets its own time
embedding, computed from its own timestep, and the prompt embedding is added to it; blocks are
modulated by that sum (scale and shift per channel), so the model takes a noise level per frame,
which FIFO needs.

Shapes: ``'b c f h w'`` clips, ``'b f'`` timesteps, ``'(b f) c h w'`` inside spatial layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from fifo_shapes.world import vocabulary

_INSTALL = "pip install open-clip-torch (the default model tokenizes prompts with OpenCLIP's tokenizer)"


def _open_clip():
    try:
        import open_clip
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(f"the shapes backbone needs open-clip-torch; {_INSTALL}") from error
    return open_clip


class ShapesModelConfig(BaseModel):
    """Sizes of the model; stored next to the weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = 32
    channels: int = 3
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 16
    embed_dim: int = 128
    widths: tuple[int, int] = (32, 64)
    blocks: tuple[int, int] = (1, 2)
    groups: int = 8
    num_train_timesteps: int = 1000
    motion: bool = False  # stage 2 of training adds MotionConv layers and the text tower's word path


def grammar_token_ids(context_length: int = 77) -> list[int]:
    """OpenCLIP BPE ids of every token the grammar's words and the special tokens use, sorted."""
    tokens = _open_clip().tokenize(vocabulary(), context_length=context_length)
    return sorted({int(t) for t in tokens.flatten().tolist()} - {0})


class TextTower(nn.Module):
    """Prompt embeddings ``'b d'`` from OpenCLIP token ids ``'b l'``."""

    def __init__(self, config: ShapesModelConfig, token_ids: list[int] | None = None) -> None:
        super().__init__()
        self.config = config
        token_ids = grammar_token_ids() if token_ids is None else token_ids
        # BPE id -> row of the compact table; row 0 is padding and every unknown token is row 1.
        self.register_buffer("known_ids", torch.tensor(token_ids, dtype=torch.long))
        self.token_embedding = nn.Embedding(len(token_ids) + 2, config.text_width)
        self.positional_embedding = nn.Parameter(torch.randn(config.context_length, config.text_width) * 0.01)
        transformer = _open_clip().transformer
        self.transformer = transformer.Transformer(
            width=config.text_width, layers=config.text_layers, heads=config.text_heads, batch_first=True
        )
        self.ln_final = transformer.LayerNorm(config.text_width)
        self.projection = nn.Linear(config.text_width, config.embed_dim)
        # A direct path from the words themselves (their mean embedding) to the prompt embedding.
        # The base model's end-of-text feature came out the same for every motion word (cosine
        # 1.000): a word the denoiser cannot use yet gets no gradient, so it never starts to
        # matter. Zero-initialised, so adding it leaves a trained model's output unchanged.
        self.words = nn.Linear(config.text_width, config.embed_dim) if config.motion else None
        if self.words is not None:
            nn.init.zeros_(self.words.weight)
            nn.init.zeros_(self.words.bias)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """BPE ids ``'b l'``; prompts longer than the context are cut, as OpenCLIP does."""
        return _open_clip().tokenize(prompts, context_length=self.config.context_length).to(self.known_ids.device)

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """Compact table rows for BPE ids."""
        index = torch.searchsorted(self.known_ids, tokens).clamp(max=self.known_ids.numel() - 1)
        known = self.known_ids[index] == tokens
        return torch.where(tokens == 0, 0, torch.where(known, index + 2, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        words = self.token_embedding(self.rows(tokens))
        x = words + self.positional_embedding
        length = tokens.shape[1]
        causal = torch.full((length, length), float("-inf"), device=x.device).triu_(1)
        x = self.ln_final(self.transformer(x, attn_mask=causal))
        end_of_text = tokens.argmax(dim=-1)  # the end-of-text id is the largest id, as in CLIP
        embedding = self.projection(x[torch.arange(x.shape[0], device=x.device), end_of_text])
        if self.words is not None:
            present = (tokens != 0).unsqueeze(-1).to(words.dtype)
            embedding = embedding + self.words((words * present).sum(dim=1) / present.sum(dim=1).clamp(min=1))
        return embedding

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return self(self.tokenize(prompts))


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``'n dim'`` of ``n`` (possibly fractional) timesteps."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def _conv(channels_in: int, channels_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, padding_mode="circular")


class ResBlock(nn.Module):
    """``'(b f) c h w'`` -> ``'(b f) c_out h w'``, modulated by a per-frame embedding ``'(b f) e'``."""

    def __init__(self, channels_in: int, channels_out: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels_in)
        self.conv1 = _conv(channels_in, channels_out)
        self.modulation = nn.Linear(embed_dim, 2 * channels_out)
        self.norm2 = nn.GroupNorm(groups, channels_out)
        self.conv2 = _conv(channels_out, channels_out)
        self.skip = nn.Conv2d(channels_in, channels_out, 1) if channels_in != channels_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.modulation(embedding)[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class TemporalConv(nn.Module):
    """A residual convolution over frames, kernel 3, zero padding at the clip's ends."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        folded, channels, height, width = x.shape
        h = F.silu(self.norm(x)).reshape(folded // frames, frames, channels, height * width).transpose(1, 2)
        h = self.conv(h).transpose(1, 2).reshape(folded, channels, height, width)
        return x + h


class MotionConv(nn.Module):
    """A residual 3x3x3 convolution over space and time (circular in space, zero padded in time),
    its input modulated by the per-frame embedding (timestep and prompt).

    A shape moving one pixel per frame is one step of such a kernel; the per-position
    :class:`TemporalConv` alone did not learn motion (docs/default-model.md). The modulation lets
    the prompt's motion words pick which shifts the kernel applies. Zero-initialised, so adding it
    to a trained model leaves the model's output unchanged until it is trained.
    """

    def __init__(self, channels: int, embed_dim: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.modulation = nn.Linear(embed_dim, 2 * channels)
        self.conv = nn.Conv3d(channels, channels, 3)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, frames: int) -> torch.Tensor:
        folded, channels, height, width = x.shape
        scale, shift = self.modulation(embedding)[..., None, None].chunk(2, dim=1)
        h = F.silu(self.norm(x) * (1 + scale) + shift)
        h = h.reshape(folded // frames, frames, channels, height, width).transpose(1, 2)
        h = F.pad(F.pad(h, (1, 1, 1, 1, 0, 0), mode="circular"), (0, 0, 0, 0, 1, 1))
        h = self.conv(h).transpose(1, 2).reshape(folded, channels, height, width)
        return x + h


class Stage(nn.ModuleList):
    """Residual blocks, each followed by a temporal convolution (and a motion convolution when
    the model has them)."""

    def __init__(self, channels_in: int, channels_out: int, count: int, embed_dim: int, groups: int, motion: bool) -> None:
        layers: list[nn.Module] = []
        for index in range(count):
            layers += [ResBlock(channels_in if index == 0 else channels_out, channels_out, embed_dim, groups), TemporalConv(channels_out, groups)]
        super().__init__(layers)
        self.layer_count = len(layers)
        # Registered under their own name (after the list's numbered layers), so the weights of
        # a model without them load into one with them.
        self.motion = nn.ModuleList([MotionConv(channels_out, embed_dim, groups) for _ in range(count)]) if motion else None

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, frames: int) -> torch.Tensor:
        for index in range(self.layer_count):
            layer = self[index]
            if isinstance(layer, ResBlock):
                x = layer(x, embedding)
                continue
            x = layer(x, frames)
            if self.motion is not None:
                x = self.motion[index // 2](x, embedding, frames)
        return x


class ShapesDenoiser(nn.Module):
    """v-prediction ``'b c f h w'`` for noisy clips ``'b c f h w'``, timesteps ``'b f'`` and
    prompt embeddings ``'b e'``."""

    def __init__(self, config: ShapesModelConfig) -> None:
        super().__init__()
        self.config = config
        wide, deep = config.widths
        e, groups, motion = config.embed_dim, config.groups, config.motion
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = _conv(4 * config.channels, wide)
        self.encoder = Stage(wide, wide, config.blocks[0], e, groups, motion)
        self.down = _conv(wide, deep, stride=2)
        self.middle = Stage(deep, deep, config.blocks[1], e, groups, motion)
        self.up = _conv(deep, wide)
        self.decoder = Stage(2 * wide, wide, config.blocks[0], e, groups, motion)
        self.norm_out = nn.GroupNorm(groups, wide)
        self.conv_out = _conv(wide, 4 * config.channels)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        # One embedding per frame from that frame's own timestep, plus the row's prompt.
        embedding = self.time_mlp(timestep_embedding(timesteps.reshape(-1), self.config.embed_dim))
        embedding = F.silu(embedding + prompt.repeat_interleave(frames, dim=0))
        h = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        h = self.conv_in(F.pixel_unshuffle(h, 2))
        skip = self.encoder(h, embedding, frames)
        h = self.middle(self.down(skip), embedding, frames)
        h = self.up(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.decoder(torch.cat([h, skip], dim=1), embedding, frames)
        h = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), 2)
        return h.reshape(batch, frames, channels, height, width).transpose(1, 2)


class ShapesModel(nn.Module):
    """The text tower and the denoiser, saved together in one safetensors file."""

    def __init__(self, config: ShapesModelConfig, token_ids: list[int] | None = None) -> None:
        super().__init__()
        self.config = config
        self.text = TextTower(config, token_ids)
        self.denoiser = ShapesDenoiser(config)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        return self.denoiser(x, timesteps, self.text.encode(prompts))


def cosine_alphas_cumprod(num_train_timesteps: int = 1000, offset: float = 0.008) -> torch.Tensor:
    """``abar_t`` of the cosine schedule (Nichol & Dhariwal 2021), float64, ``t = 0..T-1``."""
    steps = torch.arange(num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
    f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)

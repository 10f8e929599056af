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

Motion tracker (``tracking``, in ``fifo-shapes-tracker``, not the default; docs/default-model.md): a small CNN foresees,
for every pair of neighbouring frames, which of the nine whole-pixel steps the shape takes next
(from the prompt embedding and the frames before the step). The denoiser then works in the
shape's frame of reference: every frame is rolled back by its offset from the window's first
frame (the world is a torus and its background plain, so a roll is exact), where the shape stands
still, and the prediction is rolled forward again. When sampling, every frame takes the clean
estimate of the window's cleanest frame, snapped to the world's palette: with lookahead the first
window's cleanest frame is the one dequeued last, so each new frame is that frame moved one step.

Shapes: ``'b c f h w'`` clips, ``'b f'`` timesteps, ``'(b f) c h w'`` inside spatial layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import nn

from fifo_shapes.world import PALETTE, palette_tensor, torus_offset, vocabulary

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
    tracking: bool = False  # stage 4 adds the MotionTracker: the denoiser works in the shape's frame of reference


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


# The frame-to-frame steps a MotionTracker chooses between, as (dx, dy) in world pixels; index 4
# is standing still. The world moves a shape at most one pixel per frame along each axis.
STEPS = torch.tensor([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], dtype=torch.long)


def step_index(steps: torch.Tensor) -> torch.Tensor:
    """Index into :data:`STEPS` of steps ``'... 2'`` with components in ``{-1, 0, 1}``."""
    return (steps[..., 0] + 1) + 3 * (steps[..., 1] + 1)


def offsets_from_steps(steps: torch.Tensor) -> torch.Tensor:
    """Offsets ``'b f 2'`` of every frame from the clip's first frame, for steps ``'b (f-1) 2'``."""
    return torch.cat([torch.zeros_like(steps[:, :1]), steps.cumsum(dim=1)], dim=1)


def roll_frames(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Move the content of every frame of ``x`` ``'b c f h w'`` by its own whole-pixel offset
    ``'b f 2'`` (dx, dy) on the torus. Exact: a roll is a permutation of pixels."""
    batch, _, frames, height, width = x.shape
    offsets = offsets.to(x.device)
    rows = (torch.arange(height, device=x.device) - offsets[..., 1, None]) % height  # 'b f h'
    columns = (torch.arange(width, device=x.device) - offsets[..., 0, None]) % width  # 'b f w'
    b = torch.arange(batch, device=x.device)[:, None, None, None]
    f = torch.arange(frames, device=x.device)[None, :, None, None]
    moved = x.permute(0, 2, 3, 4, 1)[b, f, rows[..., :, None], columns[..., None, :]]  # 'b f h w c'
    return moved.permute(0, 4, 1, 2, 3)


# The shared clean estimate is snapped to the palette below this timestep (in FIFO's queue: the
# leads of the first three of its four windows). Higher up the estimate is still a blur, and
# snapping it there fixed a first clip's shape too early: 27 of 32 first clips had the right
# colour and shape with 700, 30 of 32 with 400 (16 prompts x 2 seeds, 2-core CPU).
SNAP_BELOW = 400


def snap_to_palette(images: torch.Tensor) -> torch.Tensor:
    """Every pixel of ``'b 3 h w'`` images in ``[-1, 1]`` replaced by the nearest colour of the
    world's palette: the world draws nothing else."""
    palette = palette_tensor(tuple(PALETTE)).to(images)  # 'k 3'
    distances = ((images[:, None] - palette[None, :, :, None, None]) ** 2).sum(dim=2)  # 'b k h w'
    return palette[distances.argmin(dim=1)].permute(0, 3, 1, 2)


class MotionTracker(nn.Module):
    """Predicts how the shape moves from each frame of a clip to the next: logits ``'b (f-1) 9'``
    over :data:`STEPS`, for noisy clips ``'b c f h w'``, timesteps ``'b f'`` and prompt embeddings.

    The step from frame ``k`` to ``k + 1`` is foreseen from frames ``k - 2 .. k`` only (frames
    before the clip count as pure noise), never read off frame ``k + 1``: when sampling, the frames
    after the window's cleanest one are copies placed by the tracker itself, and a tracker that
    reads them back only confirms its earlier guesses (bouncing shapes then kept one diagonal and
    wrapped round the torus). Inputs: the frames, each with its noise level as a channel, and for
    each of their neighbouring pairs a matching cost per candidate step (how far the later frame
    is from the earlier one moved by that step: a cost volume, as optical-flow networks use), so
    the step just taken is one channel's minimum. Where the shape stands in frame ``k`` (a near
    one-hot, :meth:`place_features`) tells when a bounce turns at a wall, and the prompt
    embedding alone decides the steps of ``moving ...`` prompts.
    """

    CONTEXT = 3  # frames k - 2 .. k
    BUMP_WIDTH = 0.5  # pixels: the place features are near one-hot

    def __init__(self, config: ShapesModelConfig, width: int = 32) -> None:
        super().__init__()
        self.num_train_timesteps = config.num_train_timesteps
        pairs = self.CONTEXT - 1
        channels_in = self.CONTEXT * (config.channels + 1) + pairs * len(STEPS) + 2
        self.features = nn.Sequential(
            nn.Conv2d(channels_in, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(2 * width * (config.image_size // 8) ** 2, config.embed_dim),
        )
        self.votes = nn.Linear(pairs * len(STEPS), config.embed_dim)  # the costs averaged over the frame
        self.prompt = nn.Linear(config.embed_dim, config.embed_dim)
        self.place = nn.Linear(2 * config.image_size, config.embed_dim)  # where the shape is in frame k
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(config.embed_dim, config.embed_dim), nn.SiLU(), nn.Linear(config.embed_dim, len(STEPS)))

    @staticmethod
    def matching_costs(frames: torch.Tensor) -> torch.Tensor:
        """``'b 9 (f-1) h w'``: for each neighbouring pair and step, the squared difference between
        the later frame and the earlier one moved by the step (0 where the step explains the move)."""
        earlier, later = frames[:, :, :-1], frames[:, :, 1:]
        costs = [
            ((later - torch.roll(earlier, shifts=(dy, dx), dims=(3, 4))) ** 2).sum(dim=1)
            for dx, dy in STEPS.tolist()
        ]
        return torch.stack(costs, dim=1) / 4

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        batch, _, frames, height, width = x.shape
        before = self.CONTEXT - 1
        padded = F.pad(x, (0, 0, 0, 0, before, 0))  # 'b c (f+2) h w'
        level = (timesteps.float() / self.num_train_timesteps).to(x.dtype)
        level = F.pad(level, (before, 0), value=1.0)[:, None, :, None, None].expand(batch, 1, frames + before, height, width)
        # One stack per step k -> k+1, over frames k-2 .. k ('... CONTEXT' last after unfold).
        stacks = torch.cat([padded, level], dim=1).unfold(2, self.CONTEXT, 1)[:, :, : frames - 1]
        stacks = stacks.permute(0, 2, 5, 1, 3, 4).reshape(batch * (frames - 1), -1, height, width)
        costs = self.matching_costs(padded).unfold(2, self.CONTEXT - 1, 1)[:, :, : frames - 1]  # 'b 9 (f-1) h w pairs'
        costs = costs.permute(0, 2, 5, 1, 3, 4).reshape(batch * (frames - 1), -1, height, width)
        grid = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
        coordinates = torch.stack(torch.meshgrid(grid, grid, indexing="xy"))[None].expand(stacks.shape[0], 2, height, width)
        # Each pair's costs averaged over the frame and standardised across the nine steps: raw,
        # the right step's mean cost is only about 0.01 below the others', too small a signal
        # for the tracker to learn to use (it stayed below chance on bouncing clips).
        votes = costs.mean(dim=(2, 3)).reshape(-1, self.CONTEXT - 1, len(STEPS))
        votes = (votes - votes.mean(dim=-1, keepdim=True)) / (votes.std(dim=-1, keepdim=True) + 1e-4)
        features = self.features(torch.cat([stacks, costs, coordinates], dim=1)) + self.votes(votes.flatten(1))
        # Frame k's place: a bounce turns at the walls. With the convolutions alone bouncing shapes
        # went straight through them; the place did it, once training drew bouncing clips more
        # often (--bouncing-weight; docs/default-model.md).
        place = self.place(self.place_features(x[:, :, : frames - 1]))  # 'b (f-1) e'
        return self.head(features.reshape(batch, frames - 1, -1) + place + self.prompt(prompt)[:, None])

    def place_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``'b f (h + w)'``: where each frame's shape stands, as a bump round its centre on each
        axis (almost one-hot, so the head can learn a rule per position, as a bounce off a wall
        is). The centre is the circular mean of the pixels, weighted by their squared distance
        from the frame's median (background) colour: it needs no knowledge of the colours, and
        noise spread evenly over the frame only shortens the mean."""
        height, width = frames.shape[-2:]
        background = frames.flatten(3).median(dim=3).values[..., None, None]
        weight = ((frames - background) ** 2).sum(dim=1)  # 'b f h w'
        weight = weight / weight.sum(dim=(2, 3), keepdim=True).clamp(min=1e-6)
        bumps = []
        for axis, size in ((3, width), (2, height)):  # x then y
            cells = torch.arange(size, device=frames.device, dtype=frames.dtype)
            angle = cells * (2 * math.pi / size)
            marginal = weight.sum(dim=5 - axis)  # 'b f size'
            centre = torch.atan2((marginal * angle.sin()).sum(-1), (marginal * angle.cos()).sum(-1)) * (size / (2 * math.pi))
            distance = torus_offset(cells - centre[..., None], size)
            bumps.append(torch.exp(-(distance**2) / (2 * self.BUMP_WIDTH**2)))
        return torch.cat(bumps, dim=-1)

    def offsets(self, x: torch.Tensor, timesteps: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """The most likely offset of every frame from the first, ``'b f 2'``."""
        steps = STEPS.to(x.device)[self(x, timesteps, prompt).argmax(dim=-1)]
        return offsets_from_steps(steps)


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
        self.tracker = MotionTracker(config) if config.tracking else None
        # The training schedule, for the lead frame's clean estimate when sampling; not saved.
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(config.num_train_timesteps).float(), persistent=False)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor, prompt: torch.Tensor, offsets: torch.Tensor | None = None, share_clean: bool = False
    ) -> torch.Tensor:
        """With a tracker, the clip is denoised in the shape's frame of reference: every frame is
        moved back by its ``offsets`` ``'b f 2'`` from the first frame (the tracker's when not
        given; training gives the true ones), where the shape stands still, and the prediction is
        moved forward again. ``share_clean`` (sampling) gives every frame the clean estimate of
        the clip's cleanest frame (:meth:`_lead_clean_frame`)."""
        if self.tracker is None:
            return self._denoise(x, timesteps, prompt)
        if offsets is None:
            offsets = self.tracker.offsets(x, timesteps, prompt)
        still = roll_frames(x, -offsets)
        v = self._denoise(still, timesteps, prompt)
        if share_clean:
            v = self._lead_clean_frame(still, v, timesteps)
        return roll_frames(v, offsets)

    def _lead_clean_frame(self, x: torch.Tensor, v: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``v`` for a still clip in which every frame takes the clean estimate ``x0 = a x - s v``
        of the clip's cleanest frame (the newest of them on a tie), each keeping its own noise.
        Below :data:`SNAP_BELOW` that estimate is first snapped to the world's palette.

        In the shape's frame of reference all frames show one image. Left to keep the frames
        alike by itself, the U-Net let the shape creep a pixel every few frames; an average of
        the frames' estimates instead blurred the shape when all frames were equally noisy
        (docs/default-model.md). In FIFO's windows the cleanest frame is the one nearest the
        head, so the noisy frames behind it continue what it shows: with lookahead, the first
        window's lead is the frame dequeued last, so every new frame is that frame moved.
        Snapping keeps the copies crisp: an unsnapped estimate's soft edges were copied on
        and on (a square read as a circle, a purple shape faded into a blue background).
        """
        index = timesteps.round().long().clamp(0, self.alphas_cumprod.numel() - 1)
        signal = self.alphas_cumprod[index].to(v.dtype)[:, None, :, None, None]
        a, s = signal.sqrt(), (1 - signal).clamp(min=1e-6).sqrt()
        # The newest of the cleanest frames: lookahead's windows begin with frames already clean,
        # and the newest of them is the frame just before the ones being denoised.
        lead = index.shape[1] - 1 - index.flip(dims=[1]).argmin(dim=1)
        rows = torch.arange(x.shape[0], device=x.device)
        clean = a[rows, :, lead] * x[rows, :, lead] - s[rows, :, lead] * v[rows, :, lead]  # 'b c h w'
        snap = (index[rows, lead] < SNAP_BELOW)[:, None, None, None]
        clean = torch.where(snap, snap_to_palette(clean), clean)
        return (a * x - clean[:, :, None]) / s

    def _denoise(self, x: torch.Tensor, timesteps: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
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

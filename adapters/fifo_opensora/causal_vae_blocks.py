"""The layers of Open-Sora Plan's CausalVAE, each named as the released config names it.

Every layer takes and returns a video ``'b c t h w'``. Attribute names give the released
state-dict keys (``conv.conv.weight`` for a causal convolution inside a resampler, ``mix_factor``
for a mixed resampler, ...). Three behaviours the released weights were trained with:

* *causal in time*: a temporal kernel of size ``k`` sees the current frame and ``k - 1`` earlier
  ones; before the first frame there is the first frame again (repeated, not zeros), so frame 0
  is computed as if the clip were a still image;
* *2-D layers are per frame*, GroupNorm included (statistics over ``h w`` of one frame), while
  3-D layers normalise over all ``t h w`` of the clip;
* *temporal resampling leaves the first frame alone*: 1 + 2n frames become 1 + n and back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _triple(value: int | tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, tuple) else (value, value, value)  # type: ignore[return-value]


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


def per_frame(layer: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Apply an image layer ``'n c h w'`` to every frame of ``'b c t h w'``."""
    batch, frames = video.shape[0], video.shape[2]
    images = video.transpose(1, 2).flatten(0, 1)
    return layer(images).unflatten(0, (batch, frames)).transpose(1, 2)


def repeat_first_frame(video: torch.Tensor, count: int) -> torch.Tensor:
    """``'b c t h w' -> 'b c (count + t) h w'``: ``count`` copies of frame 0 in front."""
    if count == 0:
        return video
    return torch.cat([video[:, :, :1].expand(-1, -1, count, -1, -1), video], dim=2)


class FrameConv2d(nn.Conv2d):
    """``Conv2d`` in the config: a 2-D convolution applied to each frame (keys ``weight``, ``bias``)."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return per_frame(super().forward, video)


class CausalConv3d(nn.Module):
    """A 3-D convolution whose output frame ``i`` sees input frames ``<= i`` (key prefix ``conv.``).

    ``padding`` pads ``h w`` with zeros; in time the first frame is repeated ``k_t - 1`` times.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        super().__init__()
        kernel = _triple(kernel_size)
        spatial_padding = _triple(padding)
        self.time_padding = kernel[0] - 1
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel, stride=_triple(stride), padding=(0, *spatial_padding[1:])
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.conv(repeat_first_frame(video, self.time_padding))


class _ResnetBlock(nn.Module):
    """norm, SiLU, conv, norm, SiLU, conv, plus the input (through a 1x1 conv if channels change)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return shortcut + h


class ResnetBlock2D(_ResnetBlock):
    """The residual block on each frame by itself; its GroupNorms see one frame."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, video)


class ResnetBlock3D(_ResnetBlock):
    """The residual block with causal 3x3x3 convolutions; its GroupNorms see the whole clip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = CausalConv3d(in_channels, out_channels, 1)


class AttnBlock3DFix(nn.Module):
    """Single-head self-attention among the ``h w`` positions of each frame, 1x1 projections."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = CausalConv3d(channels, channels, 1)
        self.k = CausalConv3d(channels, channels, 1)
        self.v = CausalConv3d(channels, channels, 1)
        self.proj_out = CausalConv3d(channels, channels, 1)

    def _to_tokens(self, y: torch.Tensor) -> torch.Tensor:
        """``'b c t h w' -> '(b t) 1 (h w) c'``."""
        return y.permute(0, 2, 3, 4, 1).flatten(2, 3).flatten(0, 1)[:, None]

    def _from_tokens(self, tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        batch, channels, frames, height, width = shape
        return tokens[:, 0].reshape(batch, frames, height, width, channels).permute(0, 4, 1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        q, k, v = (self._to_tokens(proj(h)) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(self._from_tokens(out, x.shape))


class AttnBlock3D(AttnBlock3DFix):
    """The older attention block: the same layers, but tokens are cut straight from memory.

    It views the contiguous ``'b c t h w'`` tensor as ``'(b t) c (h w)'``, so for ``t > 1`` a
    "frame" of tokens mixes channels of several frames. Weights trained with it expect exactly
    that, so it is reproduced as is; for a single frame both blocks agree.
    """

    def _to_tokens(self, y: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = y.shape
        return y.reshape(batch * frames, channels, height * width).transpose(1, 2)[:, None]

    def _from_tokens(self, tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return tokens[:, 0].transpose(1, 2).reshape(shape)


class Downsample(nn.Module):
    """Halve ``h w`` of each frame: zero-pad right and bottom by one, 3x3 conv, stride 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return per_frame(self.conv, F.pad(video, (0, 1, 0, 1)))


class SpatialDownsample2x(nn.Module):
    """``Downsample`` written as a causal 1x3x3 convolution (key prefix ``conv.conv.``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, (1, 3, 3), stride=(1, 2, 2))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(video, (0, 1, 0, 1)))


def _average_pairs_causally(video: torch.Tensor) -> torch.Tensor:
    """``'b c (1 + 2n) h w' -> 'b c (1 + n) h w'``: mean of 3-frame windows, stride 2, first frame repeated in front."""
    padded = repeat_first_frame(video, 2)
    # float32 because CPU avg_pool3d has no bfloat16/float16 kernel
    return F.avg_pool3d(padded.float(), (3, 1, 1), stride=(2, 1, 1)).to(video.dtype)


class TimeDownsample2x(nn.Module):
    """Halve the frames after the first with a causal 3-frame average (no weights)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return _average_pairs_causally(video)


class TimeDownsampleRes2x(nn.Module):
    """Halve the frames: ``a * average + (1 - a) * conv`` with ``a = sigmoid(mix_factor)``.

    The convolution is 3x3x3 with stride 2 in time, on the same first-frame-padded clip.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 3, stride=(2, 1, 1), padding=(0, 1, 1))
        self.mix_factor = nn.Parameter(torch.tensor([2.0]))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        return alpha * _average_pairs_causally(video) + (1 - alpha) * self.conv(repeat_first_frame(video, 2))


class SpatialUpsample2x(nn.Module):
    """Double ``h w``: nearest-neighbour copies, then a 1x3x3 convolution (key prefix ``conv.conv.``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, (1, 3, 3), padding=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(video, scale_factor=(1, 2, 2), mode="nearest"))


def _interpolate_after_first(video: torch.Tensor) -> torch.Tensor:
    """``'b c (1 + n) h w' -> 'b c (1 + 2n) h w'``: frame 0 kept, the n others linearly resampled to 2n."""
    if video.shape[2] == 1:
        return video
    later = F.interpolate(video[:, :, 1:], scale_factor=(2, 1, 1), mode="trilinear")
    return torch.cat([video[:, :, :1], later], dim=2)


class TimeUpsample2x(nn.Module):
    """Double the frames after the first by linear interpolation in time (no weights)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return _interpolate_after_first(video)


class TimeUpsampleRes2x(nn.Module):
    """Double the frames after the first: ``a * y + (1 - a) * causal_conv(y)``, ``y`` interpolated."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, 3, padding=1)
        self.mix_factor = nn.Parameter(torch.tensor([2.0]))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        video = _interpolate_after_first(video)
        return alpha * video + (1 - alpha) * self.conv(video)


def _conv3x3(kind: type[nn.Module]):
    if kind is FrameConv2d:
        return lambda in_channels, out_channels: FrameConv2d(in_channels, out_channels, 3, padding=1)
    return lambda in_channels, out_channels: CausalConv3d(in_channels, out_channels, 3, padding=1)


#: For each config field family, the class names it accepts and how to build them from
#: ``(in_channels, out_channels)`` (attention: ``(channels,)``).
LAYERS: dict[str, dict[str, object]] = {
    "conv": {"Conv2d": _conv3x3(FrameConv2d), "CausalConv3d": _conv3x3(CausalConv3d)},
    "attention": {"AttnBlock3D": AttnBlock3D, "AttnBlock3DFix": AttnBlock3DFix},
    "resnet": {"ResnetBlock2D": ResnetBlock2D, "ResnetBlock3D": ResnetBlock3D},
    "spatial_downsample": {"Downsample": Downsample, "SpatialDownsample2x": SpatialDownsample2x},
    "temporal_downsample": {"TimeDownsample2x": TimeDownsample2x, "TimeDownsampleRes2x": TimeDownsampleRes2x},
    "spatial_upsample": {"SpatialUpsample2x": SpatialUpsample2x},
    "temporal_upsample": {"TimeUpsample2x": TimeUpsample2x, "TimeUpsampleRes2x": TimeUpsampleRes2x},
}

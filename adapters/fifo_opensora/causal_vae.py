"""Open-Sora Plan v1.1's causal video VAE (``CausalVAEModel_4x8x8``), loadable from the released folder.

Notation (shapes as einops strings):

* video ``'b 3 T H W'`` in ``[-1, 1]`` with ``T = 1 + 4k``; latent ``'b 4 t h w'`` with
  ``t = 1 + k``, ``h = H / 8``, ``w = W / 8``. Frame 0 is encoded as a still image into latent
  frame 0; every later latent frame stands for 4 video frames.
* ``SCALING_FACTOR`` (0.18215) is applied by the caller: the diffusion model sees
  ``0.18215 * latent``. :meth:`CausalVAE.encode` and :meth:`CausalVAE.decode` work unscaled.

The module tree (``encoder.down.N.block.M``, ``encoder.mid.attn_1``, ``decoder.up.N.upsample``,
``quant_conv.conv``, ...) gives exactly the keys of ``vae/diffusion_pytorch_model.safetensors``
of LanguageBind/Open-Sora-Plan-v1.1.0, apart from the training losses (``loss.*``), which are
skipped. The layer classes are chosen by name from ``config.json``; see ``causal_vae_blocks``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fifo_core.errors import ConfigError
from fifo_opensora.checkpoint import check_state, read_weights
from fifo_opensora.causal_vae_blocks import LAYERS, CausalConv3d, group_norm

SCALING_FACTOR = 0.18215

CONFIG_FILE = "config.json"
SKIPPED_KEY_PREFIX = "loss."

_FOLDER_LAYOUT = (
    "a folder laid out like vae/ of LanguageBind/Open-Sora-Plan-v1.1.0: config.json plus "
    "diffusion_pytorch_model.safetensors (or .bin) holding encoder.*, decoder.*, quant_conv.*, "
    "post_quant_conv.* (loss.* is ignored)"
)

# The reference constructor's defaults: a config.json may leave any of these out.
_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "z_channels": 4,
    "hidden_size_mult": [1, 2, 4, 4],
    "attn_resolutions": [],
    "dropout": 0.0,
    "resolution": 256,
    "double_z": True,
    "embed_dim": 4,
    "num_res_blocks": 2,
    "q_conv": "CausalConv3d",
    "encoder_conv_in": "CausalConv3d",
    "encoder_conv_out": "CausalConv3d",
    "encoder_attention": "AttnBlock3D",
    "encoder_resnet_blocks": ["ResnetBlock3D"] * 4,
    "encoder_spatial_downsample": ["SpatialDownsample2x", "SpatialDownsample2x", "SpatialDownsample2x", ""],
    "encoder_temporal_downsample": ["", "TimeDownsample2x", "TimeDownsample2x", ""],
    "encoder_mid_resnet": "ResnetBlock3D",
    "decoder_conv_in": "CausalConv3d",
    "decoder_conv_out": "CausalConv3d",
    "decoder_attention": "AttnBlock3D",
    "decoder_resnet_blocks": ["ResnetBlock3D"] * 4,
    "decoder_spatial_upsample": ["", "SpatialUpsample2x", "SpatialUpsample2x", "SpatialUpsample2x"],
    "decoder_temporal_upsample": ["", "", "TimeUpsample2x", "TimeUpsample2x"],
    "decoder_mid_resnet": "ResnetBlock3D",
}
# Fields that only concern training, or are diffusers bookkeeping (any name starting with "_").
_TRAINING_FIELDS = {"lr", "loss_type", "loss_params"}
_IMAGE_CHANNEL_FIELDS = ("in_channels", "out_channels")  # written by later releases; always 3


def released_config() -> dict[str, Any]:
    """``vae/config.json`` of LanguageBind/Open-Sora-Plan-v1.1.0 (CausalVAEModel_4x8x8).

    As the project's docs quote it ("the v1.1.0 version model configuration file"): 2-D layers in
    the first two encoder levels, temporal resampling mixed with ``sigmoid(mix_factor)``,
    per-frame attention (``AttnBlock3DFix``). The v1.1.0 tag's ``scripts/causalvae/release.json``
    is the older v1.0 layout; its layer classes are supported too.
    """
    return {
        "_class_name": "CausalVAEModel",
        "_diffusers_version": "0.27.2",
        "attn_resolutions": [],
        "decoder_attention": "AttnBlock3DFix",
        "decoder_conv_in": "CausalConv3d",
        "decoder_conv_out": "CausalConv3d",
        "decoder_mid_resnet": "ResnetBlock3D",
        "decoder_resnet_blocks": ["ResnetBlock3D", "ResnetBlock3D", "ResnetBlock3D", "ResnetBlock3D"],
        "decoder_spatial_upsample": ["", "SpatialUpsample2x", "SpatialUpsample2x", "SpatialUpsample2x"],
        "decoder_temporal_upsample": ["", "", "TimeUpsampleRes2x", "TimeUpsampleRes2x"],
        "double_z": True,
        "dropout": 0.0,
        "embed_dim": 4,
        "encoder_attention": "AttnBlock3DFix",
        "encoder_conv_in": "Conv2d",
        "encoder_conv_out": "CausalConv3d",
        "encoder_mid_resnet": "ResnetBlock3D",
        "encoder_resnet_blocks": ["ResnetBlock2D", "ResnetBlock2D", "ResnetBlock3D", "ResnetBlock3D"],
        "encoder_spatial_downsample": ["Downsample", "Downsample", "Downsample", ""],
        "encoder_temporal_downsample": ["", "TimeDownsampleRes2x", "TimeDownsampleRes2x", ""],
        "hidden_size": 128,
        "hidden_size_mult": [1, 2, 4, 4],
        "in_channels": 3,
        "loss_params": {"disc_start": 2001, "disc_weight": 0.5, "kl_weight": 1e-06, "logvar_init": 0.0},
        "loss_type": "opensora.models.ae.videobase.losses.LPIPSWithDiscriminator3D",
        "lr": 1e-05,
        "num_res_blocks": 2,
        "out_channels": 3,
        "q_conv": "CausalConv3d",
        "resolution": 256,
        "z_channels": 4,
    }


def tiny_config() -> dict[str, Any]:
    """The released layout at the smallest width: 32 channels everywhere (GroupNorm needs 32 groups).

    Same layer classes and 4x8x8 compression, one block per encoder level (two per decoder
    level): about 1.0 M parameters instead of 247 M.
    """
    config = released_config()
    config.update(hidden_size=32, hidden_size_mult=[1, 1, 1, 1], num_res_blocks=1)
    return config


def _fail(message: str) -> ConfigError:
    return ConfigError(message, field="backbone_options")


def _layer(family: str, name: str, field: str) -> Any:
    known = LAYERS[family]
    if name not in known:
        raise _fail(f"CausalVAE config field {field!r} names {name!r}, which this implementation does not have; "
                    f"expected one of {sorted(known)}. The released Open-Sora Plan v1.1 config uses only these.")
    return known[name]


def _parse_config(config: dict[str, Any]) -> dict[str, Any]:
    """The reference defaults overlaid with ``config``, checked; training fields dropped."""
    unknown = sorted(k for k in config if k not in _DEFAULTS and k not in _TRAINING_FIELDS
                     and k not in _IMAGE_CHANNEL_FIELDS and not k.startswith("_"))
    if unknown:
        raise _fail(f"CausalVAE config has unknown fields {unknown}; expected the fields of Open-Sora Plan "
                    f"v1.1's vae/config.json, e.g. {sorted(_DEFAULTS)[:6]}...")
    for field in _IMAGE_CHANNEL_FIELDS:
        if config.get(field, 3) != 3:
            raise _fail(f"CausalVAE config field {field!r} is {config[field]!r}; only RGB (3) is supported.")
    parsed = {**_DEFAULTS, **{k: v for k, v in config.items() if k in _DEFAULTS}}
    levels = len(parsed["hidden_size_mult"])
    for field in ("encoder_resnet_blocks", "encoder_spatial_downsample", "encoder_temporal_downsample",
                  "decoder_resnet_blocks", "decoder_spatial_upsample", "decoder_temporal_upsample"):
        if len(parsed[field]) != levels:
            raise _fail(f"CausalVAE config field {field!r} has {len(parsed[field])} entries but hidden_size_mult "
                        f"has {levels}; give one entry per level ('' for none).")
    if parsed["encoder_spatial_downsample"][-1] or parsed["encoder_temporal_downsample"][-1]:
        raise _fail("CausalVAE config resamples after the last encoder level, which the reference encoder "
                    "ignores; set the last entries of encoder_spatial_downsample and "
                    "encoder_temporal_downsample to ''.")
    if parsed["hidden_size"] % 32:
        raise _fail(f"CausalVAE hidden_size {parsed['hidden_size']} must be a multiple of 32 (GroupNorm uses 32 groups).")
    if not parsed["double_z"]:
        raise _fail("CausalVAE config has double_z false; the released model predicts mean and log-variance "
                    "(double_z true), which quant_conv expects.")
    if parsed["num_res_blocks"] < 1:
        raise _fail("CausalVAE num_res_blocks must be at least 1.")
    if parsed["q_conv"] != "CausalConv3d":
        raise _fail(f"CausalVAE q_conv {parsed['q_conv']!r} is not supported; expected 'CausalConv3d'.")
    down_s = sum(map(bool, parsed["encoder_spatial_downsample"]))
    down_t = sum(map(bool, parsed["encoder_temporal_downsample"]))
    up_s = sum(map(bool, parsed["decoder_spatial_upsample"]))
    up_t = sum(map(bool, parsed["decoder_temporal_upsample"]))
    if (down_s, down_t) != (up_s, up_t):
        raise _fail(f"CausalVAE encoder downsamples {down_s}x in space and {down_t}x in time but the decoder "
                    f"upsamples {up_s}x and {up_t}x; they must match.")
    return parsed


class _Level(nn.Module):
    """One resolution: ``block`` (and ``attn``) then optional resampling, named as released."""

    def __init__(self, blocks: list[nn.Module], attentions: list[nn.Module], resamplers: dict[str, nn.Module]) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attentions)
        for name, module in resamplers.items():
            setattr(self, name, module)
        self._resampler_names = list(resamplers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h)
        for name in self._resampler_names:
            h = getattr(self, name)(h)
        return h


class _Middle(nn.Module):
    def __init__(self, resnet: Any, attention: Any, channels: int) -> None:
        super().__init__()
        self.block_1 = resnet(channels, channels)
        self.attn_1 = attention(channels)
        self.block_2 = resnet(channels, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """``'b 3 T H W' -> 'b (2 z) t h w'``: mean and log-variance of the posterior."""

    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        widths = [c["hidden_size"] * m for m in c["hidden_size_mult"]]
        self.conv_in = _layer("conv", c["encoder_conv_in"], "encoder_conv_in")(3, c["hidden_size"])
        attention = _layer("attention", c["encoder_attention"], "encoder_attention")
        resolution, channels = c["resolution"], c["hidden_size"]
        self.down = nn.ModuleList()
        for i, width in enumerate(widths):
            resnet = _layer("resnet", c["encoder_resnet_blocks"][i], "encoder_resnet_blocks")
            blocks = [resnet(channels if j == 0 else width, width) for j in range(c["num_res_blocks"])]
            attentions = [attention(width) for _ in blocks] if resolution in c["attn_resolutions"] else []
            channels = width
            resamplers = {}
            if c["encoder_spatial_downsample"][i]:
                kind = _layer("spatial_downsample", c["encoder_spatial_downsample"][i], "encoder_spatial_downsample")
                resamplers["downsample"] = kind(width, width)
                resolution //= 2
            if c["encoder_temporal_downsample"][i]:
                kind = _layer("temporal_downsample", c["encoder_temporal_downsample"][i], "encoder_temporal_downsample")
                resamplers["time_downsample"] = kind(width, width)
            self.down.append(_Level(blocks, attentions, resamplers))
        mid_resnet = _layer("resnet", c["encoder_mid_resnet"], "encoder_mid_resnet")
        self.mid = _Middle(mid_resnet, attention, channels)
        self.norm_out = group_norm(channels)
        self.conv_out = _layer("conv", c["encoder_conv_out"], "encoder_conv_out")(channels, 2 * c["z_channels"])

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(video)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``'b z t h w' -> 'b 3 T H W'``; levels run from the last (narrowest) to level 0."""

    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        widths = [c["hidden_size"] * m for m in c["hidden_size_mult"]]
        channels = widths[-1]
        resolution = c["resolution"] // 2 ** (len(widths) - 1)
        attention = _layer("attention", c["decoder_attention"], "decoder_attention")
        self.conv_in = _layer("conv", c["decoder_conv_in"], "decoder_conv_in")(c["z_channels"], channels)
        mid_resnet = _layer("resnet", c["decoder_mid_resnet"], "decoder_mid_resnet")
        self.mid = _Middle(mid_resnet, attention, channels)
        levels: list[_Level] = []
        for i in reversed(range(len(widths))):
            width = widths[i]
            resnet = _layer("resnet", c["decoder_resnet_blocks"][i], "decoder_resnet_blocks")
            blocks = [resnet(channels if j == 0 else width, width) for j in range(c["num_res_blocks"] + 1)]
            attentions = [attention(width) for _ in blocks] if resolution in c["attn_resolutions"] else []
            channels = width
            resamplers = {}
            if c["decoder_spatial_upsample"][i]:
                kind = _layer("spatial_upsample", c["decoder_spatial_upsample"][i], "decoder_spatial_upsample")
                resamplers["upsample"] = kind(width, width)
                resolution *= 2
            if c["decoder_temporal_upsample"][i]:
                kind = _layer("temporal_upsample", c["decoder_temporal_upsample"][i], "decoder_temporal_upsample")
                resamplers["time_upsample"] = kind(width, width)
            levels.insert(0, _Level(blocks, attentions, resamplers))
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(channels)
        self.conv_out = _layer("conv", c["decoder_conv_out"], "decoder_conv_out")(channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class CausalVAE(nn.Module):
    """The CausalVAE of Open-Sora Plan v1.1: ``encode`` gives the posterior mean, ``decode`` the video.

    Not tiled, and GroupNorm in the 3-D blocks pools statistics over every frame of the clip, so
    decoding a clip in pieces gives (slightly) different frames than decoding it whole.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        c = _parse_config(config)
        self.config = dict(config)
        self.latent_channels: int = c["embed_dim"]
        self.spatial_compression: int = 2 ** sum(map(bool, c["encoder_spatial_downsample"]))
        self.temporal_compression: int = 2 ** sum(map(bool, c["encoder_temporal_downsample"]))
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quant_conv = CausalConv3d(2 * c["z_channels"], 2 * c["embed_dim"], 1)
        self.post_quant_conv = CausalConv3d(c["embed_dim"], c["z_channels"], 1)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CausalVAE:
        """A randomly initialised model; ``config`` in the schema of the released ``config.json``."""
        return cls(config).eval()

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, dtype: torch.dtype = torch.float32,
                        device: str | torch.device = "cpu") -> CausalVAE:
        """Load ``config.json`` and ``diffusion_pytorch_model.safetensors`` (or ``.bin``) from ``folder``."""
        folder = Path(folder)
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise _fail(f"CausalVAE folder {str(folder)!r} lacks {CONFIG_FILE}; expected {_FOLDER_LAYOUT}.")
        config = json.loads(config_path.read_text())
        with torch.device("meta"):
            model = cls(config)
        state = read_weights(folder, layout=_FOLDER_LAYOUT)
        state = {k: v for k, v in state.items() if not k.startswith(SKIPPED_KEY_PREFIX)}
        check_state(model, state, what=f"the CausalVAE weights in {str(folder)!r}", layout=_FOLDER_LAYOUT)
        model.load_state_dict(state, strict=True, assign=True)
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)

    def _check_video(self, video: torch.Tensor) -> None:
        s, t = self.spatial_compression, self.temporal_compression
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"CausalVAE.encode expects video 'b 3 T H W', got shape {tuple(video.shape)}.")
        frames, height, width = video.shape[2:]
        if (frames - 1) % t or height % s or width % s:
            raise ValueError(f"CausalVAE.encode needs T = 1 + {t}k frames and H, W multiples of {s}; got "
                             f"T={frames}, H={height}, W={width}. Trim or pad the clip first.")

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``'b 3 T H W'`` in [-1, 1], ``T = 1 + 4k`` -> posterior mean ``'b 4 (1 + k) (H/8) (W/8)'``, unscaled."""
        self._check_video(video)
        moments = self.quant_conv(self.encoder(video))
        return moments[:, : self.latent_channels]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Unscaled ``'b 4 t h w'`` -> video ``'b 3 (1 + 4(t - 1)) (8h) (8w)'``, about [-1, 1]."""
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(f"CausalVAE.decode expects latents 'b {self.latent_channels} t h w', "
                             f"got shape {tuple(latent.shape)}.")
        return self.decoder(self.post_quant_conv(latent))


def parameter_count(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())

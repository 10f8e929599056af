"""Open-Sora Plan v1.1.0's DiT (the reference's ``LatteT2V``) as diffusers' ``LatteTransformer3DModel``.

A released folder (``65x512x512/`` or ``221x512x512/`` of ``LanguageBind/Open-Sora-Plan-v1.1.0``) holds a
``config.json`` written by ``LatteT2V`` and ``diffusion_pytorch_model.safetensors``. Its state dict is
diffusers' Latte one plus ``caption_projection.y_embedding`` (the embedding of a dropped caption, used
only in training), and its forward pass is the same computation once the config is translated:

1. ``sample_size`` is ``[h, w]`` in the release, one integer (square latents) in diffusers.
2. ``video_length`` is the length ``f`` of the temporal sin-cos table, so the number of latent frames
   the model accepts: 17 for 65 video frames, 56 for 221 (:data:`VIDEO_LENGTHS`).
3. The temporal table of ``LatteT2V`` encodes frame ``k`` at position ``k / s``, with the interpolation
   scale ``s`` of :func:`temporal_interpolation_scale` (1 for 17 frames, 3 for 56); diffusers always
   uses ``s = 1``, so :func:`load_transformer` rebuilds the table.
4. Fields that only choose a kernel (``attention_mode``) or stay unused at inference are dropped;
   fields diffusers cannot express (RoPE, KV compression, ...) must keep their released values.

Shapes: latents ``'b c f h w'``, one timestep per sample ``'b'``, T5 states ``'b l 4096'``; output
``'b (2 c) f h w'``: epsilon, then the learned variance (samplers use the first ``c`` channels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fifo_core.errors import ConfigError
from fifo_diffusers.common import require
from fifo_opensora.checkpoint import check_state, read_weights

VIDEO_LENGTHS = {"65x512x512": 17, "221x512x512": 56}  # latent frames of each released variant

RELEASE = "LanguageBind/Open-Sora-Plan-v1.1.0"
UNUSED_BUFFER = "caption_projection.y_embedding"
LAYOUT = (
    f"the layout of {RELEASE}/65x512x512: keys such as pos_embed.proj.weight, transformer_blocks.0.attn2.to_k.weight, "
    "temporal_transformer_blocks.0.ff.net.0.proj.weight, adaln_single.linear.weight, caption_projection.linear_1.weight "
    f"(and the unused {UNUSED_BUFFER}); a diffusers LattePipeline transformer loads with the latte-1 backbone instead"
)

# ``LatteT2V``'s registered fields and their defaults (used for a field a config.json leaves out).
REFERENCE_DEFAULTS: dict[str, Any] = {
    "num_attention_heads": 16, "patch_size_t": 1, "attention_head_dim": 88, "in_channels": None,
    "out_channels": None, "num_layers": 1, "dropout": 0.0, "norm_num_groups": 32, "cross_attention_dim": None,
    "attention_bias": False, "sample_size": None, "num_vector_embeds": None, "patch_size": None,
    "activation_fn": "geglu", "num_embeds_ada_norm": None, "use_linear_projection": False,
    "only_cross_attention": False, "double_self_attention": False, "upcast_attention": False,
    "norm_type": "layer_norm", "norm_elementwise_affine": True, "norm_eps": 1e-5, "attention_type": "default",
    "caption_channels": None, "video_length": 16, "attention_mode": "flash", "use_rope": False,
    "model_max_length": 300, "rope_scaling_type": "linear", "compress_kv_factor": 1, "interpolation_scale_1d": None,
}
# Passed on to diffusers unchanged (``sample_size`` and ``video_length`` are translated separately).
SHARED_FIELDS = (
    "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "num_layers", "dropout",
    "cross_attention_dim", "attention_bias", "patch_size", "activation_fn", "num_embeds_ada_norm", "norm_type",
    "norm_elementwise_affine", "norm_eps", "caption_channels",
)
# The only value diffusers' model implements, with the reason a different one matters.
FIXED_FIELDS: dict[str, tuple[Any, str]] = {
    "norm_type": ("ada_norm_single", "diffusers' Latte always uses PixArt's adaLN-single"),
    "use_rope": (False, "diffusers' Latte has no rotary position embedding"),
    "compress_kv_factor": (1, "diffusers' Latte has no key/value compression"),
    "patch_size_t": (1, "diffusers' Latte patches frames one by one"),
    "num_vector_embeds": (None, "diffusers' Latte takes continuous latents"),
    "only_cross_attention": (False, "diffusers' Latte blocks self-attend"),
    "double_self_attention": (False, "diffusers' Latte blocks cross-attend to the text"),
    "upcast_attention": (False, "diffusers' Latte does not upcast attention"),
    "attention_type": ("default", "diffusers' Latte has no gated attention"),
}
# Inference does not read these: a kernel choice, the training text length, settings of
# unused paths (continuous input, RoPE), and the temporal scale, applied by load_transformer.
DROPPED_FIELDS = (
    "attention_mode", "model_max_length", "norm_num_groups", "use_linear_projection", "rope_scaling_type",
    "interpolation_scale_1d",
)

# LatteT2V-XL/122 as train_t2v.py builds it, serialised by the reference's save_config (diffusers
# 0.27.2, its pinned version; the released file's "_diffusers_version" may differ and is not read).
_XL_122 = {
    "_class_name": "LatteT2V", "_diffusers_version": "0.27.2", "activation_fn": "gelu-approximate",
    "attention_bias": True, "attention_head_dim": 72, "attention_mode": "xformers", "attention_type": "default",
    "caption_channels": 4096, "compress_kv_factor": 1, "cross_attention_dim": 1152, "double_self_attention": False,
    "dropout": 0.0, "in_channels": 4, "interpolation_scale_1d": None, "model_max_length": 300,
    "norm_elementwise_affine": False, "norm_eps": 1e-06, "norm_num_groups": 32, "norm_type": "ada_norm_single",
    "num_attention_heads": 16, "num_embeds_ada_norm": 1000, "num_layers": 28, "num_vector_embeds": None,
    "only_cross_attention": False, "out_channels": 8, "patch_size": 2, "patch_size_t": 1,
    "rope_scaling_type": "linear", "sample_size": [64, 64], "upcast_attention": False,
    "use_linear_projection": False, "use_rope": False, "video_length": 17,
}


def released_config(variant: str) -> dict[str, Any]:
    """The ``config.json`` of a released variant: LatteT2V-XL/122 (28 spatial + 28 temporal blocks,
    width 1152, patch 2, 1.06e9 parameters) as the reference's training script builds it."""
    if variant not in VIDEO_LENGTHS:
        raise ConfigError(f"unknown Open-Sora Plan v1.1.0 variant {variant!r}; choose one of {sorted(VIDEO_LENGTHS)}", field="variant")
    return {**_XL_122, "sample_size": [64, 64], "video_length": VIDEO_LENGTHS[variant]}


def tiny_released_config() -> dict[str, Any]:
    """A seconds-fast model in the released schema (width 16, 2 layers, 32-channel text states, 8 x 8
    latents), the one ``tests/opensora/data/latte_tiny/`` holds."""
    return {
        **_XL_122, "attention_head_dim": 8, "num_attention_heads": 2, "num_layers": 2, "caption_channels": 32,
        "cross_attention_dim": 16, "sample_size": [8, 8], "video_length": 17,
    }


def temporal_interpolation_scale(video_length: int) -> float:
    """``LatteT2V``'s divisor ``s`` of frame positions when ``interpolation_scale_1d`` is unset.

    ``s = max(n // 16, 1)`` with ``n = f - 1`` for odd ``f`` (a causal VAE's first latent holds one
    frame), else ``n = f``: Latte's 16-frame table is stretched over the longer video. So 17 -> 1,
    56 -> 3, 33 -> 2, 65 -> 4.
    """
    _check_video_length(video_length)
    frames = video_length - 1 if video_length % 2 else video_length
    return float(max(frames // 16, 1))


def temporal_position_table(width: int, video_length: int, scale: float) -> torch.Tensor:
    """Sin-cos table ``'1 f d'`` for frame positions ``k / s``, computed as ``LatteT2V`` does (the
    positions in float32, the angles in float64)."""
    from diffusers.models.embeddings import get_1d_sincos_pos_embed_from_grid

    positions = torch.arange(video_length, dtype=torch.float32) / scale
    table = get_1d_sincos_pos_embed_from_grid(width, positions.double(), output_type="pt")
    return table.float().unsqueeze(0)


def diffusers_latte_config(released: dict[str, Any], *, video_length: int) -> dict[str, Any]:
    """Keyword arguments of ``diffusers.LatteTransformer3DModel`` for a released ``config.json``.

    Raises :class:`ConfigError` for a field diffusers cannot express, and for unknown fields.
    The temporal interpolation scale has no diffusers field: :func:`load_transformer` applies it.
    """
    class_name = released.get("_class_name", "LatteT2V")
    if class_name != "LatteT2V":
        raise ConfigError(
            f"config.json describes a {class_name!r}, not Open-Sora Plan v1.1.0's 'LatteT2V'; for a diffusers "
            "LatteTransformer3DModel use the latte-1 backbone",
            field="backbone_options",
        )
    unknown = sorted(key for key in released if not key.startswith("_") and key not in REFERENCE_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"config.json has fields LatteT2V of Open-Sora Plan v1.1.0 does not register: {unknown}; "
            f"this translation knows {sorted(REFERENCE_DEFAULTS)}",
            field="backbone_options",
        )
    config = {**REFERENCE_DEFAULTS, **released}
    for field, (value, reason) in FIXED_FIELDS.items():
        if config[field] != value:
            raise ConfigError(
                f"config.json sets {field}={config[field]!r}, but only {value!r} can be loaded: {reason}",
                field="backbone_options",
            )
    for field in ("in_channels", "patch_size", "caption_channels", "cross_attention_dim"):
        if config[field] is None:
            raise ConfigError(f"config.json must set {field} (the released 65x512x512/config.json does)", field="backbone_options")
    _check_video_length(video_length)
    return {
        **{field: config[field] for field in SHARED_FIELDS},
        "sample_size": _square_side(config["sample_size"]),
        "video_length": video_length,
    }


def load_transformer(
    folder: str | Path, *, video_length: int | None = None, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Any:
    """A released ``LatteT2V`` folder as an evaluation-mode ``diffusers.LatteTransformer3DModel``.

    ``video_length`` (latent frames): by default from the folder's name (``65x512x512`` -> 17,
    ``221x512x512`` -> 56), else from ``config.json``. The temporal table is rebuilt with the
    config's ``interpolation_scale_1d``, or :func:`temporal_interpolation_scale` of ``video_length``,
    as ``LatteT2V`` built with that length does.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{folder} has no config.json; expected a released transformer folder such as "
            f"{RELEASE}/65x512x512 (config.json + diffusion_pytorch_model.safetensors)",
            field="backbone_options",
        )
    released = json.loads((folder / "config.json").read_text())
    length = _resolve_video_length(folder, released, video_length)
    config = diffusers_latte_config(released, video_length=length)
    scale = released.get("interpolation_scale_1d")
    scale = max(temporal_interpolation_scale(length) if scale is None else float(scale), 1.0)

    diffusers = require("diffusers")
    state = read_weights(folder, layout=LAYOUT)
    state.pop(UNUSED_BUFFER, None)
    model = _empty_model(diffusers.LatteTransformer3DModel, config)
    check_state(model, state, what=f"the weights in {folder}, read as Open-Sora Plan v1.1.0's LatteT2V,", layout=LAYOUT)
    model.load_state_dict(state, strict=True, assign=True)
    width = config["num_attention_heads"] * config["attention_head_dim"]
    model.temp_pos_embed = temporal_position_table(width, length, scale)
    # nn.Module.to: diffusers' override only adds a warning about float32 modules Latte does not have
    return torch.nn.Module.to(model, device=device, dtype=dtype).eval()


def _check_video_length(video_length: Any) -> None:
    if isinstance(video_length, bool) or not isinstance(video_length, int) or video_length < 1:
        raise ConfigError(
            f"video_length must be a positive number of latent frames, got {video_length!r} "
            f"(17 for {RELEASE}/65x512x512, 56 for 221x512x512)",
            field="backbone_options",
        )


def _square_side(sample_size: Any) -> int:
    side = sample_size
    if isinstance(sample_size, (list, tuple)):
        if len(sample_size) != 2 or sample_size[0] != sample_size[1]:
            raise ConfigError(
                f"config.json sample_size={sample_size!r}: diffusers' Latte needs square latents, [h, w] with h == w "
                "(the release has [64, 64])",
                field="backbone_options",
            )
        side = sample_size[0]
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ConfigError(f"config.json sample_size={sample_size!r} is not a latent size such as [64, 64]", field="backbone_options")
    return side


def _resolve_video_length(folder: Path, released: dict[str, Any], requested: int | None) -> int:
    if requested is not None:
        _check_video_length(requested)
        return requested
    by_name, in_config = VIDEO_LENGTHS.get(folder.name), released.get("video_length")
    if by_name is not None and in_config is not None and by_name != in_config:
        raise ConfigError(
            f"the folder {folder.name} is the {by_name}-latent-frame variant but its config.json says video_length="
            f"{in_config}; pass video_length explicitly",
            field="backbone_options",
        )
    length = by_name if by_name is not None else in_config
    if length is None:
        raise ConfigError(
            f"cannot tell how many latent frames {folder} was trained on: its name is not one of {sorted(VIDEO_LENGTHS)} "
            f"and its config.json has no video_length; pass video_length ({VIDEO_LENGTHS})",
            field="backbone_options",
        )
    _check_video_length(length)
    return length


def _empty_model(model_class: Any, config: dict[str, Any]) -> Any:
    """The model with parameters on the meta device (filled by ``load_state_dict(assign=True)``) and
    real buffers, so a full-size model is not randomly initialised first."""
    try:
        from accelerate import init_empty_weights
    except ImportError:
        return model_class(**config)
    with init_empty_weights(include_buffers=False):
        return model_class(**config)

"""Random-weight models of each family, tiny (tests) or at the real architecture's size (benchmarks).

The real configurations are written out here from the published models' configs, so nothing is
downloaded; the compute of a random-weight model is the same as with trained weights.
:func:`save_pipeline` writes a tiny model as a diffusers pipeline folder, so tests go through the
adapters' real loading path (``from_pretrained`` on a folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from fifo_diffusers.common import random_fill_, require

Size = Literal["tiny", "real"]

WORDS = "a red circle moving left blue square cat dog running on the beach at night benchmark prompt".split()


def word_tokenizer(max_length: int) -> Any:
    """A word-level fast tokenizer over :data:`WORDS` (unknown words map to ``<unk>``)."""
    tokenizers, transformers = require("tokenizers"), require("transformers")
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, "<s>": 3}
    vocab.update({word: 4 + index for index, word in enumerate(WORDS)})
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>", bos_token="<s>",
        model_max_length=max_length,
    )


# -- zeroscope / ModelScope ------------------------------------------------------------------

UNET3D_REAL = dict(  # cerspense/zeroscope_v2_576w and ModelScope 1.7B share this U-Net
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=1024,
    attention_head_dim=64, norm_num_groups=32, in_channels=4, out_channels=4, sample_size=32,
)
UNET3D_TINY = dict(
    block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=8, attention_head_dim=4,
    norm_num_groups=4, in_channels=4, out_channels=4, sample_size=8,
    down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
)
SD_VAE_REAL = dict(
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, norm_num_groups=32,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.18215,
)
SD_VAE_TINY = dict(
    block_out_channels=(8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, scaling_factor=0.18215,
)
CLIP_TEXT_TINY = dict(
    vocab_size=len(WORDS) + 4, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
    max_position_embeddings=16, pad_token_id=0, bos_token_id=3, eos_token_id=2,
)
SD_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    prediction_type="epsilon", clip_sample=False, set_alpha_to_one=False,
)


def unet3d_components(size: Size, seed: int = 0) -> dict[str, Any]:
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    unet = diffusers.UNet3DConditionModel(**(UNET3D_TINY if size == "tiny" else UNET3D_REAL))
    vae = diffusers.AutoencoderKL(**(SD_VAE_TINY if size == "tiny" else SD_VAE_REAL))
    components = {
        "unet": random_fill_(unet, seed),
        "vae": random_fill_(vae, seed + 1),
        "scheduler": diffusers.DDIMScheduler(**SD_SCHEDULER),
    }
    if size == "tiny":
        transformers = require("transformers")
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_TEXT_TINY))
        components["text_encoder"] = random_fill_(text, seed + 2)
        components["tokenizer"] = word_tokenizer(CLIP_TEXT_TINY["max_position_embeddings"])
    return components


# -- AnimateDiff ------------------------------------------------------------------------------

SD15_UNET_REAL = dict(  # runwayml/stable-diffusion-v1-5 U-Net
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
    norm_num_groups=32, in_channels=4, out_channels=4, sample_size=64,
)
SD15_UNET_TINY = dict(
    block_out_channels=(8, 16), layers_per_block=2, cross_attention_dim=8, attention_head_dim=4, norm_num_groups=4,
    in_channels=4, out_channels=4, sample_size=8,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
)
MOTION_ADAPTER_REAL = dict(  # guoyww/animatediff-motion-adapter-v1-5-2
    block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2, motion_num_attention_heads=8,
    motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=True,
)
MOTION_ADAPTER_TINY = dict(
    block_out_channels=(8, 16), motion_layers_per_block=2, motion_num_attention_heads=2,
    motion_norm_num_groups=4, motion_max_seq_length=32, use_motion_mid_block=True,
)


def animatediff_components(size: Size, seed: int = 0) -> dict[str, Any]:
    """An SD 1.5-style pipeline plus a motion adapter (saved as separate subfolders)."""
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    components = unet3d_components(size, seed)
    del components["unet"]
    components["unet"] = random_fill_(diffusers.UNet2DConditionModel(**(SD15_UNET_TINY if size == "tiny" else SD15_UNET_REAL)), seed + 3)
    adapter = diffusers.MotionAdapter(**(MOTION_ADAPTER_TINY if size == "tiny" else MOTION_ADAPTER_REAL))
    components["motion_adapter"] = random_fill_(adapter, seed + 4)
    if size == "tiny":
        transformers = require("transformers")
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(**{**CLIP_TEXT_TINY}))
        components["text_encoder"] = random_fill_(text, seed + 2)
    return components


# -- Wan 2.1 ---------------------------------------------------------------------------------

WAN_REAL = {  # Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    "1.3b": dict(
        patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    ),
    "14b": dict(  # Wan-AI/Wan2.1-T2V-14B-Diffusers
        patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    ),
}
WAN_TINY = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
    text_dim=8, freq_dim=16, ffn_dim=16, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    eps=1e-6, rope_max_seq_len=32,
)
WAN_VAE_TINY = dict(
    base_dim=4, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
    latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[1.5, 0.8, 1.2, 2.0],
)
UMT5_TINY = dict(
    vocab_size=len(WORDS) + 4, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2,
    relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0,
)
WAN_SCHEDULER = dict(
    prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0,
)


def wan_components(size: Size, seed: int = 0, variant: str = "1.3b") -> dict[str, Any]:
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    transformer = diffusers.WanTransformer3DModel(**(WAN_TINY if size == "tiny" else WAN_REAL[variant]))
    vae = diffusers.AutoencoderKLWan(**(WAN_VAE_TINY if size == "tiny" else {}))
    components = {
        "transformer": random_fill_(transformer, seed),
        "vae": random_fill_(vae, seed + 1),
        "scheduler": diffusers.UniPCMultistepScheduler(**WAN_SCHEDULER),
    }
    if size == "tiny":
        transformers = require("transformers")
        text = transformers.UMT5EncoderModel(transformers.UMT5Config(**UMT5_TINY))
        components["text_encoder"] = random_fill_(text, seed + 2)
        components["tokenizer"] = word_tokenizer(16)
    return components


# -- Latte-1 --------------------------------------------------------------------------------

LATTE_REAL = dict(  # maxin-cn/Latte-1 transformer (PixArt-alpha-sized: 28 layers, 16 x 72 channels)
    num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
    cross_attention_dim=1152, attention_bias=True, sample_size=64, patch_size=2, activation_fn="gelu-approximate",
    num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
    caption_channels=4096, video_length=16,
)
LATTE_TINY = dict(
    num_attention_heads=2, attention_head_dim=4, in_channels=4, out_channels=8, num_layers=2, cross_attention_dim=8,
    attention_bias=True, sample_size=8, patch_size=2, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
    norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6, caption_channels=8, video_length=4,
)
LATTE_SCHEDULER = dict(  # maxin-cn/Latte-1: linear betas, epsilon with a learned variance
    beta_start=0.0001, beta_end=0.02, beta_schedule="linear", num_train_timesteps=1000, prediction_type="epsilon",
    variance_type="learned_range", clip_sample=False,
)


def latte_components(size: Size, seed: int = 0) -> dict[str, Any]:
    """Latte-1: its transformer, the SD VAE it decodes with, a DDPM scheduler and (tiny) a T5 encoder."""
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    transformer = diffusers.LatteTransformer3DModel(**(LATTE_TINY if size == "tiny" else LATTE_REAL))
    vae = diffusers.AutoencoderKL(**(SD_VAE_TINY if size == "tiny" else SD_VAE_REAL))
    components = {
        "transformer": random_fill_(transformer, seed),
        "vae": random_fill_(vae, seed + 1),
        "scheduler": diffusers.DDPMScheduler(**LATTE_SCHEDULER),
    }
    if size == "tiny":
        transformers = require("transformers")
        text = transformers.T5EncoderModel(transformers.T5Config(**UMT5_TINY))
        components["text_encoder"] = random_fill_(text, seed + 2)
        components["tokenizer"] = word_tokenizer(16)
    return components


# -- LTX-Video 0.9 ----------------------------------------------------------------------------

LTX_REAL: dict[str, Any] = {}  # Lightricks/LTX-Video 0.9: diffusers' LTXVideoTransformer3DModel defaults (28 layers, 32 x 64)
LTX_VAE_REAL: dict[str, Any] = {}  # its AutoencoderKLLTXVideo defaults: 128 latent channels, 8x time, 32x space, non-causal decoder
LTX_TINY = dict(
    in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
    cross_attention_dim=16, num_layers=2, caption_channels=8,
)
LTX_VAE_TINY = dict(  # still 8x in time and 32x in space (3 spatio-temporal scalings, patch 4)
    latent_channels=8, block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
    layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1), patch_size=4,
)
LTX_SCHEDULER = dict(  # Lightricks/LTX-Video scheduler_config.json
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
    base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1,
)


def ltx_components(size: Size, seed: int = 0) -> dict[str, Any]:
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    transformer = diffusers.LTXVideoTransformer3DModel(**(LTX_TINY if size == "tiny" else LTX_REAL))
    vae = random_fill_(diffusers.AutoencoderKLLTXVideo(**(LTX_VAE_TINY if size == "tiny" else LTX_VAE_REAL)), seed + 1)
    generator = torch.Generator().manual_seed(seed + 3)
    with torch.no_grad():  # non-trivial latent statistics, so denormalisation is exercised
        vae.latents_mean.copy_(0.1 * torch.randn(vae.latents_mean.shape, generator=generator))
        vae.latents_std.copy_(1 + 0.2 * torch.rand(vae.latents_std.shape, generator=generator))
    components = {
        "transformer": random_fill_(transformer, seed),
        "vae": vae,
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(**LTX_SCHEDULER),
    }
    if size == "tiny":
        transformers = require("transformers")
        text = transformers.T5EncoderModel(transformers.T5Config(**UMT5_TINY))
        components["text_encoder"] = random_fill_(text, seed + 2)
        components["tokenizer"] = word_tokenizer(16)
    return components


def save_pipeline(components: dict[str, Any], folder: str | Path) -> Path:
    """Write ``components`` as a diffusers pipeline folder (one subfolder each)."""
    folder = Path(folder)
    for name, component in components.items():
        if hasattr(component, "save_pretrained"):
            component.save_pretrained(folder / name)
        else:
            component.save_config(folder / name)
    return folder

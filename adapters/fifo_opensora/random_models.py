"""Open-Sora Plan v1.1 folders in the released layout with seeded random weights: tiny for tests,
full size for the opt-in slow test and the GPU benchmark.

The folder looks like the hub repository (``65x512x512/`` or ``221x512x512/`` and ``vae/``, each a
``config.json`` and ``diffusion_pytorch_model.safetensors`` in the released key layout, with the
released extras: the caption projection's ``y_embedding`` buffer and a training-loss weight in the
VAE file), so the backbone loads it through the same code as the real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from fifo_diffusers.common import random_fill_, require
from fifo_diffusers.random_models import WORDS, word_tokenizer
from fifo_opensora import causal_vae, transformer
from fifo_opensora.defaults import Variant

Size = Literal["tiny", "real"]
CAPTION_TOKENS = 120  # rows of the released caption projection's unused y_embedding buffer


def _write(folder: Path, config: dict, state: dict[str, torch.Tensor], dtype: torch.dtype) -> Path:
    safetensors = require("safetensors.torch")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tensors = {key: value.to(dtype).contiguous() for key, value in state.items()}
    safetensors.save_file(tensors, str(folder / "diffusion_pytorch_model.safetensors"))
    return folder


def write_transformer(folder: Path, released_config: dict, *, video_length: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A released-layout transformer folder: diffusers' Latte with the translated config, random
    weights, saved under the released config and keys."""
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    model = random_fill_(diffusers.LatteTransformer3DModel(**transformer.diffusers_latte_config(released_config, video_length=video_length)), seed)
    state = dict(model.state_dict())
    generator = torch.Generator().manual_seed(seed + 100)
    state["caption_projection.y_embedding"] = torch.randn(CAPTION_TOKENS, released_config["caption_channels"], generator=generator)
    return _write(folder, released_config, state, dtype)


def write_vae(folder: Path, config: dict, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A released-layout CausalVAE folder with random weights and one training-loss weight."""
    torch.manual_seed(seed)
    model = random_fill_(causal_vae.CausalVAE.from_config(config), seed)
    state = dict(model.state_dict())
    state["loss.logvar"] = torch.zeros(())  # the released file carries the training loss's weights too
    return _write(folder, config, state, dtype)


def write_tiny_t5(folder: Path, d_model: int, *, max_length: int = 300, seed: int = 0) -> Path:
    """A one-layer T5 encoder over a word-level tokenizer of :data:`WORDS`, saved with the tokenizer."""
    transformers = require("transformers")
    torch.manual_seed(seed)
    config = transformers.T5Config(
        vocab_size=len(WORDS) + 4, d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2, decoder_start_token_id=0,
    )
    random_fill_(transformers.T5EncoderModel(config), seed).save_pretrained(folder)
    word_tokenizer(max_length).save_pretrained(folder)
    return folder


def write_released_layout(folder: str | Path, size: Size = "tiny", variant: Variant = "65x512x512", seed: int = 0) -> Path:
    """``folder/variant`` and ``folder/vae`` with random weights (float16 files at full size, as
    released), plus a one-layer T5 in ``folder/t5`` whose width is the transformer's caption width."""
    folder = Path(folder)
    real = size == "real"
    released = transformer.released_config(variant) if real else transformer.tiny_released_config()
    dtype = torch.float16 if real else torch.float32
    write_transformer(folder / variant, released, video_length=transformer.VIDEO_LENGTHS[variant], seed=seed, dtype=dtype)
    write_vae(folder / "vae", causal_vae.released_config() if real else causal_vae.tiny_config(), seed=seed + 1, dtype=dtype)
    write_tiny_t5(folder / "t5", released["caption_channels"], seed=seed + 2)
    return folder

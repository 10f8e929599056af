"""Open-Sora Plan v1.1 text-to-video: its Latte DiT through diffusers, a native CausalVAE, T5-XXL.

Loads a folder in the released layout (``LanguageBind/Open-Sora-Plan-v1.1.0``: ``65x512x512/``,
``221x512x512/``, ``vae/``) or that hub id, and a T5 encoder (``DeepFloyd/t5-v1_1-xxl``).

* Transformer: :func:`fifo_opensora.transformer.load_transformer` translates the released config
  to diffusers' ``LatteTransformer3DModel`` (same weights, same outputs); the Latte adapter's
  :class:`~fifo_diffusers.latte.PerFrameModulation` gives every frame its own timestep. The model
  predicts epsilon and a learned variance; only epsilon is used.
* Schedule: as trained, 1000 linear betas 1e-4..0.02, epsilon; DDPM by default, as in the paper.
  New frames enter the queue at the noisiest level of the grid, the level they are drawn at.
* Prompts: T5 over 300 tokens, encoded once per prompt. The states are cut to the real token count
  of the longest prompt in a model call, as the released pipeline cuts them (see
  :class:`OpenSoraPromptEncoder`).
* Decoding: the CausalVAE compresses time 4x; its GroupNorm spans all frames of a clip, so it is
  not strictly causal. Dequeued latents are decoded in small clips at the queue head
  (:class:`~fifo_core.decoding.ChunkedClipDecoder`); docs/adapters/opensora-plan.md gives the
  measured difference from decoding the whole video at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from fifo_core.backbone import BackboneDefaults, Row
from fifo_core.compiled import CompiledDenoiser, CompileMode
from fifo_core.decoding import ChunkedClipDecoder
from fifo_core.errors import ConfigError
from fifo_core.schedule import DiscreteSchedule
from fifo_diffusers.common import clean_prompt, place, require, resolve_device, resolve_dtype, tokenize_padded
from fifo_diffusers.latte import PerFrameModulation, latte_noise_prediction
from fifo_opensora.causal_vae import SCALING_FACTOR, CausalVAE
from fifo_opensora.defaults import OpenSoraPlanOptions
from fifo_opensora.transformer import VIDEO_LENGTHS, load_transformer

# Open-Sora Plan v1.1 was trained with diffusers' default DDPM schedule.
TRAINING_SCHEDULE = DiscreteSchedule.linear(0.0001, 0.02, 1000, prediction_type="epsilon")


@dataclass(frozen=True)
class EncodedPrompt:
    """T5 states ``'1 L d'`` over the whole ``max_sequence_length`` and the prompt's token count."""

    states: torch.Tensor
    length: int


class OpenSoraPromptEncoder:
    """T5 encoder states of one prompt, padded to ``max_length`` tokens (with the attention mask
    the released pipeline gives the encoder), and its real token count (the end-of-text token
    included). Prompts are lower-cased and stripped, as the released pipeline's caption cleaning
    does."""

    def __init__(self, tokenizer: Any, text_encoder: Any, device: torch.device, dtype: torch.dtype, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.to(device, dtype).eval()
        self.device = device
        self.dtype = dtype
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, prompt: str) -> EncodedPrompt:
        tokens = tokenize_padded(self.tokenizer, clean_prompt(prompt).lower(), self.max_length)
        mask = tokens.attention_mask.to(self.device)
        states = self.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0]
        return EncodedPrompt(states.to(self.dtype), int(tokens.attention_mask.sum()))


def cut_length(own: EncodedPrompt, row: Row) -> int:
    """Token count a row's states are cut to: its own prompt's or its window's prompt's, the
    longer. The released pipeline cuts a prompt and its unconditional half to the longer of the
    two; the window's prompt (from the core) makes that so whatever rows share the call."""
    return max(own.length, row.prompt.length)


def cut_to_longest(conditioning: Sequence[EncodedPrompt]) -> torch.Tensor:
    """One batch ``'b L d'``: every row's states cut to the token count of the longest prompt among
    them (shorter prompts keep their padding states up to it), as the released pipeline cuts a
    batch of prompts and its unconditional half."""
    keep = max(prompt.length for prompt in conditioning)
    return torch.cat([prompt.states[:, :keep] for prompt in conditioning], dim=0)


def resolve_model_folder(options: OpenSoraPlanOptions) -> Path:
    """The released folder: ``model`` itself when it is a local folder, else a hub download of the
    variant's transformer and the VAE only."""
    folder = Path(options.model).expanduser()
    if folder.is_dir():
        return folder
    hub = require("huggingface_hub")
    try:
        return Path(
            hub.snapshot_download(
                options.model,
                allow_patterns=[f"{options.variant}/*", "vae/*"],
                revision=options.revision,
                local_files_only=options.local_files_only,
            )
        )
    except Exception as error:  # noqa: BLE001 - the hub raises many kinds; all mean "not available"
        raise ConfigError(
            f"{options.model!r} is neither a local folder nor a downloadable hub repository ({' '.join(str(error).split())[:300]}). "
            "Pass --model with a folder holding the released layout: 65x512x512/ or 221x512x512/ and vae/",
            field="backbone_options",
        ) from None


class OpenSoraPlanBackbone:
    """FIFO backbone over Open-Sora Plan v1.1's transformer, CausalVAE and T5."""

    schedule = TRAINING_SCHEDULE

    def __init__(
        self,
        *,
        transformer: Any,
        vae: CausalVAE,
        prompt_encoder: Callable[[str], EncodedPrompt],
        defaults: BackboneDefaults,
        device: torch.device,
        dtype: torch.dtype,
        vae_dtype: torch.dtype = torch.float32,
        decode_context: int = 4,
        decode_chunk: int = 4,
        decode_lookahead: int = 0,
        compile: CompileMode = "auto",
        fp8: bool = False,
        channels_last: bool = False,
    ) -> None:
        self.transformer = place(transformer, device, dtype)
        self.vae = vae.to(device, vae_dtype).eval()
        self.shim = PerFrameModulation(self.transformer)
        self.denoiser = CompiledDenoiser(self.transformer, compile, device, fp8=fp8, channels_last=channels_last)
        self.prompt_encoder = prompt_encoder
        self.defaults = defaults
        self.device = device
        self.dtype = dtype
        self.decode_settings = {"context": decode_context, "chunk": decode_chunk, "lookahead": decode_lookahead}
        if self.vae.latent_channels != transformer.config.in_channels:
            raise ConfigError(
                f"the CausalVAE makes {self.vae.latent_channels}-channel latents but the transformer takes "
                f"{transformer.config.in_channels}; the vae/ folder does not belong to this model",
                field="backbone_options",
            )

    @classmethod
    def load(cls, defaults: BackboneDefaults, **options: Any) -> OpenSoraPlanBackbone:
        parsed = OpenSoraPlanOptions.model_validate(options)
        transformers = require("transformers")
        device = resolve_device(parsed.device)
        dtype = resolve_dtype(parsed.dtype, device)
        vae_dtype = resolve_dtype(parsed.vae_dtype, device)
        folder = resolve_model_folder(parsed)
        where = {"revision": parsed.revision, "local_files_only": parsed.local_files_only}
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(parsed.text_encoder, **where)
            text_encoder = transformers.T5EncoderModel.from_pretrained(parsed.text_encoder, torch_dtype=dtype, **where)
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"could not load the T5 text encoder from {parsed.text_encoder!r}: {' '.join(str(error).split())[:300]}. "
                "Pass --option text_encoder=FOLDER with a T5 encoder and its tokenizer (DeepFloyd/t5-v1_1-xxl)",
                field="backbone_options",
            ) from None
        return cls(
            transformer=load_transformer(folder / parsed.variant, video_length=VIDEO_LENGTHS[parsed.variant], dtype=dtype, device=device),
            vae=CausalVAE.from_pretrained(folder / "vae", dtype=vae_dtype, device=device),
            prompt_encoder=OpenSoraPromptEncoder(tokenizer, text_encoder, device, dtype, parsed.max_sequence_length),
            defaults=defaults,
            device=device,
            dtype=dtype,
            vae_dtype=vae_dtype,
            decode_context=parsed.decode_context,
            decode_chunk=parsed.decode_chunk,
            decode_lookahead=parsed.decode_lookahead,
            compile=parsed.compile,
            fp8=parsed.fp8,
            channels_last=parsed.channels_last,
        )

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        scale = self.vae.spatial_compression
        factor = scale * self.transformer.config.patch_size
        if height % factor or width % factor:
            raise ConfigError(
                f"height and width must be multiples of {factor} for Open-Sora Plan (8x VAE, 2x2 patches), got {height}x{width}",
                field="height",
            )
        return (self.vae.latent_channels, height // scale, width // scale)

    def encode_prompt(self, prompt: str) -> EncodedPrompt:
        return self.prompt_encoder(prompt)

    def predict(
        self, latents: torch.Tensor, timesteps: torch.Tensor, conditioning: Sequence[EncodedPrompt], *, rows: Sequence[Row] | None = None
    ) -> torch.Tensor:
        """Noise prediction ``'b c f h w'`` (epsilon only) at per-frame ``timesteps`` ``'b f'``.

        With ``rows`` each row's states are cut by :func:`cut_length`, and rows cut to different
        lengths run as separate batches (the transformer takes no attention mask, so padding a
        row's states would change its output); without, the call is one batch of prompts."""
        if rows is None:
            return latte_noise_prediction(self.transformer, self.shim, latents, timesteps, cut_to_longest(conditioning), self.denoiser)
        lengths = [cut_length(own, row) for own, row in zip(conditioning, rows)]
        output = torch.empty_like(latents, dtype=self.dtype, device=self.device)
        for length in sorted(set(lengths)):
            chosen = [index for index, kept in enumerate(lengths) if kept == length]
            states = torch.cat([conditioning[index].states[:, :length] for index in chosen])
            output[chosen] = latte_noise_prediction(self.transformer, self.shim, latents[chosen], timesteps[chosen], states, self.denoiser).to(output.dtype)
        return output

    def frame_decoder(self) -> ChunkedClipDecoder:
        parameter = next(self.vae.parameters())

        def decode_clip(latents: torch.Tensor) -> torch.Tensor:
            z = latents.to(parameter.device, parameter.dtype) / SCALING_FACTOR
            return self.vae.decode(z[None])[0].float().clamp(-1, 1)

        return ChunkedClipDecoder(decode_clip, per_latent=self.vae.temporal_compression, **self.decode_settings)

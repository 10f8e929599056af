"""What adapters over diffusers and transformers components share: options, loading, the noise
schedule, prompt encoders, frames from decoded video.

A public module: the diffusers adapters use it, and so may any adapter built from the same
libraries (Open-Sora Plan's does: its T5 prompt, device, precision and loading helpers); its
names are documented in docs/write-an-adapter.md. Nothing here imports diffusers or
transformers at module level; :func:`require` does it on first use and names the extra to install
when they are missing.
"""

from __future__ import annotations

import html
import importlib
import re
import socket
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fifo_core.backbone import to_uint8_frame
from fifo_core.compiled import CHANNELS_LAST_DESCRIPTION, COMPILE_DESCRIPTION, FP8_DESCRIPTION, CompileMode
from fifo_core.errors import ConfigError, PluginError
from fifo_core.schedule import DiscreteSchedule, FlowMatchingSchedule, NoiseSchedule

INSTALL_HINT = "pip install 'fifo-diffusion[diffusers]'"

DType = Literal["auto", "float32", "float16", "bfloat16"]


def require(module: str) -> Any:
    """Import ``module`` (``diffusers``, ``transformers``, ...) or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise PluginError(
            f"the diffusers backbones need the Python package {module!r}, which is not installed "
            f"({error}); install it with: {INSTALL_HINT}"
        ) from None


class DiffusersOptions(BaseModel):
    """Options shared by every diffusers backbone; each family sets its own ``model`` default."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Hugging Face model id or local folder of a diffusers pipeline")
    components: dict[str, str] = Field(
        default_factory=dict,
        description="component name -> id or folder loaded instead of the pipeline's subfolder, "
        "e.g. {'vae': '/models/my-vae'}",
    )
    dtype: DType = Field(default="auto", description="weights' precision; auto: float16/bfloat16 on CUDA, float32 on CPU")
    device: str = Field(default="auto", description="torch device; auto: cuda when available, else cpu")
    variant: str | None = Field(default=None, description="weights variant on the hub, e.g. 'fp16'")
    revision: str | None = None
    local_files_only: bool = Field(default=False, description="never reach the network")
    compile: CompileMode = Field(default="auto", description=COMPILE_DESCRIPTION)
    fp8: bool = Field(default=False, description=FP8_DESCRIPTION)
    channels_last: bool = Field(default=False, description=CHANNELS_LAST_DESCRIPTION)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:1' or 'auto'", field="backbone_options") from None


def resolve_dtype(dtype: DType, device: torch.device, cuda_default: torch.dtype = torch.float16) -> torch.dtype:
    if dtype == "auto":
        return cuda_default if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


class ComponentLoader:
    """Loads the components of one diffusers pipeline: from ``model``'s subfolders (a pipeline
    folder or hub id), or, per component, from the id or folder given in ``components``."""

    def __init__(self, options: DiffusersOptions, known: Sequence[str]) -> None:
        unknown = sorted(set(options.components) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown component(s) {unknown} in the 'components' option; this backbone's components are: "
                f"{', '.join(known)}",
                field="backbone_options",
            )
        self.options = options

    def where(self, name: str) -> tuple[str, dict[str, Any]]:
        source = self.options.components.get(name)
        if source is not None:
            return source, {}
        return self.options.model, {"subfolder": name}

    def load(self, name: str, cls: Any, **kwargs: Any) -> Any:
        source, where = self.where(name)
        common: dict[str, Any] = {"revision": self.options.revision, "local_files_only": self.options.local_files_only}
        if self.options.variant is not None and name not in ("tokenizer", "scheduler"):
            common["variant"] = self.options.variant
        try:
            return cls.from_pretrained(source, **where, **common, **kwargs)
        except (OSError, ValueError, EnvironmentError) as error:
            if hub_unreachable(error):
                raise offline_error(source) from None
            raise ConfigError(
                f"could not load the {name!r} component ({cls.__name__}) from {source!r}"
                f"{' subfolder ' + repr(name) if where else ''}: {' '.join(str(error).split())[:400]}. "
                "Pass a diffusers pipeline folder or hub id with --option model=..., or this component "
                f"alone with --option components='{{\"{name}\": \"FOLDER\"}}'",
                field="backbone_options",
            ) from None

    def t5_prompt_encoder(self, encoder_class: Any, device: torch.device, dtype: torch.dtype, max_length: int) -> T5PromptEncoder:
        """The pipeline's ``tokenizer`` and ``text_encoder`` (a T5-family ``encoder_class``) as one
        :class:`T5PromptEncoder`."""
        tokenizer = self.load("tokenizer", require("transformers").AutoTokenizer)
        return T5PromptEncoder(tokenizer, self.load("text_encoder", encoder_class, torch_dtype=dtype), device, dtype, max_length)

    def scheduler(self) -> Any:
        """The pipeline's own scheduler, built from its ``scheduler_config.json``."""
        diffusers = require("diffusers")
        source, where = self.where("scheduler")
        try:
            config = diffusers.DDIMScheduler.load_config(
                source, **where, revision=self.options.revision, local_files_only=self.options.local_files_only
            )
        except (OSError, ValueError) as error:
            if hub_unreachable(error):
                raise offline_error(source) from None
            raise ConfigError(
                f"could not read the scheduler config from {source!r}"
                f"{' subfolder scheduler' if where else ''}: {' '.join(str(error).split())[:300]}. "
                "Pass a diffusers pipeline folder or hub id with --option model=..., or the scheduler alone "
                "with --option components='{\"scheduler\": \"FOLDER\"}'",
                field="backbone_options",
            ) from None
        class_name = config.get("_class_name", "DDIMScheduler")
        scheduler_class = getattr(diffusers, class_name, None)
        if scheduler_class is None:
            raise ConfigError(f"the scheduler class {class_name!r} of {source!r} is unknown to this diffusers version")
        return scheduler_class.from_config(config)


_PREDICTION_TYPES = {"epsilon": "epsilon", "v_prediction": "v_prediction", "sample": "sample", "flow_prediction": "flow"}


def hub_unreachable(error: BaseException) -> bool:
    """Whether ``error`` was caused by no connection to the hub: huggingface_hub reports that as
    a file missing from the local cache, with the network error (or offline mode) underneath."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if any(kind.__name__ in ("ConnectError", "NetworkError", "ConnectTimeout") for kind in type(error).__mro__):
            return True
        error = error.__cause__ or error.__context__
    return False


def offline_error(source: str) -> ConfigError:
    return ConfigError(
        f"could not reach the Hugging Face hub for {source!r}: no network (or HF_HUB_OFFLINE is set), and it is not "
        f"in the local cache. Connect to the network, or download it where there is one "
        f"(huggingface-cli download {source} --local-dir FOLDER), copy the folder here and pass --model FOLDER",
        field="backbone_options",
    )


def schedule_from_scheduler(scheduler: Any, shift: float | None = None) -> NoiseSchedule:
    """The core's noise schedule from a diffusers scheduler object's configuration.

    Flow-matching schedulers (``FlowMatch*``, or ``use_flow_sigmas``/``flow_prediction``) give a
    :class:`FlowMatchingSchedule` with the config's ``flow_shift``/``shift`` unless ``shift`` is
    given; every other scheduler gives a :class:`DiscreteSchedule` of its ``alphas_cumprod``.
    """
    config = scheduler.config
    prediction = config.get("prediction_type", "epsilon")
    is_flow = (
        type(scheduler).__name__.startswith("FlowMatch")
        or prediction == "flow_prediction"
        or bool(config.get("use_flow_sigmas", False))
    )
    if is_flow:
        if shift is None:
            if config.get("use_dynamic_shifting", False):
                raise ConfigError(
                    f"{type(scheduler).__name__} shifts sigmas by resolution (use_dynamic_shifting); "
                    "pass the shift explicitly with --option flow_shift=...",
                    field="backbone_options",
                )
            shift = config.get("flow_shift") or config.get("shift") or 1.0
        return FlowMatchingSchedule(num_train_timesteps=int(config.get("num_train_timesteps", 1000)), shift=float(shift))
    if prediction not in _PREDICTION_TYPES:
        raise ConfigError(f"unsupported prediction type {prediction!r} in the scheduler config")
    kind = _PREDICTION_TYPES[prediction]
    beta_schedule = config.get("beta_schedule")
    plain = not config.get("trained_betas") and not config.get("rescale_betas_zero_snr", False)
    steps, start, end = int(config.get("num_train_timesteps", 1000)), config.get("beta_start"), config.get("beta_end")
    if plain and beta_schedule == "scaled_linear":  # in float64 (diffusers keeps float32)
        return DiscreteSchedule.scaled_linear(start, end, steps, prediction_type=kind)
    if plain and beta_schedule == "linear":
        return DiscreteSchedule.linear(start, end, steps, prediction_type=kind)
    alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
    if alphas_cumprod is None:
        raise ConfigError(f"{type(scheduler).__name__} has no alphas_cumprod; cannot derive the noise schedule")
    return DiscreteSchedule(torch.as_tensor(alphas_cumprod), prediction_type=kind)


def place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move ``model`` to ``device``; cast it only if its weights are not in ``dtype`` already, so
    modules a loader kept in float32 on purpose (Wan's norms and time embedder) stay so."""
    first = next(model.parameters(), None)
    if first is not None and first.dtype != dtype:
        return model.to(device, dtype).eval()
    return model.to(device).eval()


def random_fill_(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Overwrite every parameter with seeded Gaussian values (tiny models have zero-initialised
    layers that would otherwise hide differences; benchmarks just need any weights)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in sorted(module.named_parameters()):
            values = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
            if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight"):
                values = 1.0 + scale * values
            else:
                values = scale * values
            parameter.copy_(values.to(parameter.dtype))
    return module


# -- prompt encoders -------------------------------------------------------------------------


def clean_prompt(text: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


class ClipPromptEncoder:
    """CLIP text tower, last hidden state ``'1 L d'`` over ``L = tokenizer.model_max_length``
    tokens, as the SD-family video pipelines condition on."""

    def __init__(self, tokenizer: Any, text_encoder: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.to(device).eval()
        self.device = device
        self.dtype = dtype

    @torch.no_grad()
    def __call__(self, prompt: str) -> torch.Tensor:
        tokens = self.tokenizer(
            [prompt], padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        mask = None
        if getattr(self.text_encoder.config, "use_attention_mask", False):
            mask = tokens.attention_mask.to(self.device)
        hidden = self.text_encoder(tokens.input_ids.to(self.device), attention_mask=mask)[0]
        return hidden.to(self.dtype)


def tokenize_padded(tokenizer: Any, text: str, max_length: int) -> Any:
    """``text``'s token ids and attention mask ``'1 max_length'``: special tokens added, padded and
    truncated to ``max_length``, as the T5-conditioned pipelines tokenize."""
    return tokenizer(
        [text],
        padding="max_length",
        max_length=max_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )


class T5PromptEncoder:
    """T5/UMT5 encoder states ``'1 L d'``: the prompt's tokens, then zeros up to ``max_length``
    (Wan's convention: padding positions carry zero vectors, not the encoder's output)."""

    def __init__(self, tokenizer: Any, text_encoder: Any, device: torch.device, dtype: torch.dtype, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.to(device).eval()
        self.device = device
        self.dtype = dtype
        self.max_length = max_length

    def __call__(self, prompt: str) -> torch.Tensor:
        return self.encode_with_mask(prompt)[0]

    @torch.no_grad()
    def encode_with_mask(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """States ``'1 L d'`` (zeros after the prompt) and the attention mask ``'1 L'`` (bool) of
        the prompt's tokens, for models that attend to those only (LTX-Video)."""
        tokens = tokenize_padded(self.tokenizer, clean_prompt(prompt), self.max_length)
        length = int(tokens.attention_mask.sum())
        hidden = self.text_encoder(tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)).last_hidden_state
        hidden = hidden.to(self.dtype)
        hidden[:, length:] = 0
        return hidden, tokens.attention_mask.bool().to(self.device)


class RandomPromptEncoder:
    """Seeded random states ``'1 L d'`` per prompt, for benchmarks of random-weight models
    (the text encoder runs once per prompt, so it does not change the per-frame cost)."""

    def __init__(self, length: int, width: int, device: torch.device, dtype: torch.dtype) -> None:
        self.length, self.width, self.device, self.dtype = length, width, device, dtype

    def __call__(self, prompt: str) -> torch.Tensor:
        generator = torch.Generator().manual_seed(sum(map(ord, prompt)))
        return torch.randn(1, self.length, self.width, generator=generator).to(self.device, self.dtype)


def stack_conditioning(conditioning: Sequence[torch.Tensor]) -> torch.Tensor:
    """One batch ``'b L d'`` of per-row prompt states ``'1 L d'``."""
    return torch.cat(list(conditioning), dim=0)


@torch.no_grad()
def decode_sd_frame(vae: Any, latent: torch.Tensor) -> np.ndarray:
    """One latent frame ``'c h w'`` to one RGB frame with a Stable-Diffusion-style ``AutoencoderKL``
    (it works on single images; video models built on it decode frame by frame)."""
    parameter = next(vae.parameters())
    scaled = latent[None].to(parameter.device, parameter.dtype) / vae.config.scaling_factor
    return to_uint8_frame(vae.decode(scaled, return_dict=False)[0][0])


@torch.no_grad()
def encode_sd_frames(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    """Video frames ``'t 3 h w'`` in ``[-1, 1]`` to latents ``'t c h/8 w/8'`` with a
    Stable-Diffusion-style ``AutoencoderKL``, frame by frame: the posterior mean, scaled as the
    pipelines scale what they decode (``decode_sd_frame`` undoes it)."""
    parameter = next(vae.parameters())
    posterior = vae.encode(frames.to(parameter.device, parameter.dtype)).latent_dist
    return (posterior.mean * vae.config.scaling_factor).float()


def frames_from_video(video: torch.Tensor) -> list[np.ndarray]:
    """``'3 t h w'`` in ``[-1, 1]`` to ``t`` frames ``'h w 3'`` uint8."""
    return [to_uint8_frame(video[:, k]) for k in range(video.shape[1])]

"""Read VideoCrafter checkpoints as users have them, safely, and load them strictly.

A checkpoint (``model.ckpt`` of VideoCrafter2 / VideoCrafter1, or a ``.safetensors`` conversion)
is one flat state dict, optionally wrapped in a top-level ``state_dict`` (Lightning):

    model.diffusion_model.*     the U-Net            (1,484 keys for VideoCrafter2)
    first_stage_model.*         the VAE              (248)
    cond_stage_model.model.*    the OpenCLIP text tower (294)
    betas, alphas_cumprod, ...  schedule buffers     (12, plus scale_arr with use_scale)

Pickles are read with ``torch.load(weights_only=True)``, which refuses arbitrary code. Every key
must be expected and every expected key present, with the expected shape; otherwise the error
lists what is missing, unexpected or misshapen, and names the variant the file looks like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fifo_core.errors import ConfigError
from fifo_core.weight_files import WeightFileError, load_safetensors, load_torch_pickle
from fifo_videocrafter.config import ARCHITECTURES, VideoCrafterArchitecture
from fifo_videocrafter.schedule import checkpoint_buffers, mismatched_buffers
from fifo_videocrafter.text import OpenClipTextEncoder
from fifo_videocrafter.unet import UNet3D
from fifo_videocrafter.vae import AutoencoderKL

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
_CHECKPOINT_NAMES = ("model.safetensors", "model.ckpt")
_LISTED = 8


CHECKPOINT_FIELD = "backbone_options.checkpoint"


class CheckpointError(ConfigError):
    """A checkpoint file is missing, unreadable or does not match the architecture."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field=CHECKPOINT_FIELD)


@dataclass
class VideoCrafterModules:
    unet: UNet3D
    vae: AutoencoderKL
    text: OpenClipTextEncoder


def build_modules(architecture: VideoCrafterArchitecture, device: torch.device | str | None = None) -> VideoCrafterModules:
    """The three networks with PyTorch's default initialisation (``device="meta"`` allocates nothing)."""
    with torch.device(device or "cpu"):
        return VideoCrafterModules(
            UNet3D(architecture.unet), AutoencoderKL(architecture.vae), OpenClipTextEncoder(architecture.text)
        )


def _parts(modules: VideoCrafterModules) -> dict[str, nn.Module]:
    return {UNET_PREFIX: modules.unet, VAE_PREFIX: modules.vae, TEXT_PREFIX: modules.text}


def expected_shapes(architecture: VideoCrafterArchitecture) -> dict[str, tuple[int, ...]]:
    """Every key of a checkpoint of ``architecture`` and the shape it must have."""
    shapes = {}
    for prefix, module in _parts(build_modules(architecture, "meta")).items():
        shapes.update({prefix + key: tuple(value.shape) for key, value in module.state_dict().items()})
    shapes.update({name: tuple(value.shape) for name, value in checkpoint_buffers(architecture.schedule).items()})
    return shapes


def state_dict_of(modules: VideoCrafterModules, architecture: VideoCrafterArchitecture) -> dict[str, torch.Tensor]:
    """A state dict in the original layout (what :func:`read_checkpoint` reads back)."""
    state = {prefix + key: value for prefix, module in _parts(modules).items() for key, value in module.state_dict().items()}
    state.update(checkpoint_buffers(architecture.schedule))
    return state


def find_checkpoint_file(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        for name in _CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{str(path)!r} is a folder without {' or '.join(_CHECKPOINT_NAMES)}; pass the checkpoint file itself, "
            "e.g. --option checkpoint=checkpoints/base_512_v2/model.ckpt"
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not exist. Download model.ckpt from "
            "https://huggingface.co/VideoCrafter/VideoCrafter2 (or VideoCrafter1's Text2Video-512 / -1024) "
            "and pass --option checkpoint=/path/to/model.ckpt"
        )
    return path


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict of a checkpoint file, without executing any code from it."""
    path = find_checkpoint_file(path)
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(path, field=CHECKPOINT_FIELD, extra="videocrafter")
        else:
            state = load_torch_pickle(path, field=CHECKPOINT_FIELD)
    except WeightFileError as error:
        raise CheckpointError(str(error)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(
            f"{str(path)!r} does not hold a state dict of tensors (nor one under 'state_dict'); "
            "is it a VideoCrafter model.ckpt?"
        )
    return state


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", ... ({len(keys) - _LISTED} more)" if len(keys) > _LISTED else "")


def _looks_like(keys: set[str], chosen: str) -> str:
    for name, architecture in ARCHITECTURES.items():
        if name != chosen and set(expected_shapes(architecture)) == keys:
            return f" The keys match {name!r} exactly: use --backbone {name}."
    return ""


def check_state_dict(state: dict[str, torch.Tensor], architecture: VideoCrafterArchitecture, name: str) -> None:
    """Raise :class:`CheckpointError` unless ``state`` has exactly the keys and shapes expected."""
    expected = expected_shapes(architecture)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(
        f"{key} {tuple(state[key].shape)} (expected {expected[key]})"
        for key in set(expected) & set(state)
        if tuple(state[key].shape) != expected[key]
    )
    if missing or unexpected or misshapen:
        parts = [f"the checkpoint does not fit {name!r} ({len(expected)} keys expected, {len(state)} found)."]
        if missing:
            parts.append(f"Missing {len(missing)}: {_listing(missing)}.")
        if unexpected:
            parts.append(f"Unexpected {len(unexpected)}: {_listing(unexpected)}.")
        if misshapen:
            parts.append(f"Wrong shape {len(misshapen)}: {_listing(misshapen)}.")
        hint = _looks_like(set(state), name)
        parts.append(hint or " Check that the file is the variant's original model.ckpt, or describe its architecture "
                             "with --option architecture=arch.json.")
        raise CheckpointError(" ".join(parts))
    wrong = mismatched_buffers(architecture.schedule, state)
    if wrong:
        raise CheckpointError(
            f"the checkpoint's noise schedule ({', '.join(wrong)}) differs from {name!r}'s "
            f"({architecture.schedule.model_dump()}); describe it with --option architecture=arch.json"
        )


def random_modules(
    architecture: VideoCrafterArchitecture, device: torch.device | str, dtype: torch.dtype, seed: int = 0
) -> VideoCrafterModules:
    """The networks with random weights, made directly on ``device`` in ``dtype`` (for benchmarks:
    the compute is that of the trained model). Matrices and kernels ``N(0, 1/fan_in)``, norm
    weights 1, biases 0, so activations stay finite in float16."""
    modules = build_modules(architecture, "meta")
    generator = torch.Generator(device=device).manual_seed(seed)
    for module in _parts(modules).values():
        module.to_empty(device=device).to(dtype).eval().requires_grad_(False)
        for name, parameter in module.named_parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, parameter[0].numel() ** -0.5, generator=generator)
            else:
                parameter.fill_(0.0 if name.endswith("bias") else 1.0)
    return modules


def load_modules(
    state: dict[str, torch.Tensor], architecture: VideoCrafterArchitecture, name: str = "videocrafter"
) -> VideoCrafterModules:
    """The networks holding ``state``'s tensors (checked with :func:`check_state_dict` first)."""
    check_state_dict(state, architecture, name)
    modules = build_modules(architecture, "meta")
    for prefix, module in _parts(modules).items():
        part = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        module.load_state_dict(part, strict=True, assign=True)
        module.eval().requires_grad_(False)
    return modules

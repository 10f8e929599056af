"""Reading a released Open-Sora Plan component folder's weights and checking them against a model.

Both the transformer (``65x512x512/``) and the CausalVAE (``vae/``) folders hold a ``config.json``
and ``diffusion_pytorch_model.safetensors`` (or ``.bin``, or safetensors shards with an index), as
written by diffusers' ``ModelMixin.save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fifo_core.errors import ConfigError
from fifo_core.weight_files import load_safetensors, load_torch_pickle

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SHARD_INDEX = "diffusion_pytorch_model.safetensors.index.json"


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    return load_safetensors(path, extra="opensora")


def read_weights(folder: Path, *, layout: str) -> dict[str, torch.Tensor]:
    """Every tensor of ``folder``'s weights; ``layout`` describes the expected folder in the error."""
    if (folder / SHARD_INDEX).is_file():
        shards = sorted(set(json.loads((folder / SHARD_INDEX).read_text())["weight_map"].values()))
        return {key: value for shard in shards for key, value in _load_safetensors(folder / shard).items()}
    if (folder / WEIGHT_FILES[0]).is_file():
        return _load_safetensors(folder / WEIGHT_FILES[0])
    if (folder / WEIGHT_FILES[1]).is_file():
        state = load_torch_pickle(folder / WEIGHT_FILES[1])
        return state.get("state_dict", state)
    raise ConfigError(
        f"{folder} holds no weights: expected {WEIGHT_FILES[0]} (or {WEIGHT_FILES[1]}, or shards listed in {SHARD_INDEX}); "
        f"expected {layout}",
        field="backbone_options",
    )


def some(keys: list[str], shown: int = 6) -> str:
    """``keys`` as a list, cut after ``shown`` of them."""
    return str(keys[:shown])[:-1] + (", ...]" if len(keys) > shown else "]")


def check_state(model: torch.nn.Module, state: dict[str, Any], *, what: str, layout: str) -> None:
    """Raise a :class:`ConfigError` unless ``state`` has exactly ``model``'s keys and shapes.

    ``what`` names the weights (``"the weights in FOLDER"``), ``layout`` what was expected.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(
            f"{what} do not fit its config.json: {len(missing)} missing keys {some(missing)}, "
            f"{len(unexpected)} unexpected keys {some(unexpected)}; expected {layout}",
            field="backbone_options",
        )
    wrong = [f"{key}: {tuple(state[key].shape)} in the file, {shape} for config.json" for key, shape in expected.items() if tuple(state[key].shape) != shape]
    if wrong:
        raise ConfigError(
            f"{what} have other shapes than its config.json describes ({len(wrong)} tensors, e.g. {'; '.join(wrong[:3])}); "
            "the config.json does not belong to these weights",
            field="backbone_options",
        )

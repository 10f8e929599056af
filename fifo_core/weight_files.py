"""Reading weight files (PyTorch pickles, safetensors) safely, with errors that name the file and
what is wrong with it.

Pickles are read with ``torch.load(weights_only=True)`` only: a file that needs more than tensors
and plain containers is refused, and the advice is to get a ``.safetensors`` file, never to turn
the safety off. Before that, the first bytes tell an empty, foreign or cut-off file from a real
checkpoint, since torch's own messages for those are misleading (random bytes are reported as a
``weights_only`` refusal, an empty file raises a bare ``EOFError``).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from fifo_core.errors import ConfigError

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6
_PICKLE_PROTOCOLS = {bytes([0x80, protocol]) for protocol in range(2, 6)}  # the legacy format


class WeightFileError(ConfigError):
    """A weights file that cannot be read; the message names the file and the damage."""


def _refuse(path: Path, problem: str, field: str) -> WeightFileError:
    return WeightFileError(f"the weights file {str(path)!r} {problem}", field=field)


def _first_reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return " ".join(lines[0].split())[:160] if lines else type(error).__name__


def _check_not_empty(path: Path, field: str) -> int:
    size = path.stat().st_size
    if size == 0:
        raise _refuse(path, "is empty (0 bytes): the download or copy did not finish; fetch it again", field)
    return size


def load_torch_pickle(path: str | Path, *, field: str = "backbone_options") -> Any:
    """What ``torch.save`` wrote to ``path``, tensors and plain containers only, on the CPU."""
    path = Path(path)
    size = _check_not_empty(path, field)
    with path.open("rb") as file:
        head = file.read(4)
    if head == _ZIP_MAGIC:
        if not zipfile.is_zipfile(path):
            raise _refuse(path, f"is truncated or damaged: a zip archive without its end ({size} bytes); fetch it again", field)
    elif head[:2] not in _PICKLE_PROTOCOLS:
        raise _refuse(path, "is not a PyTorch checkpoint (neither torch.save's zip format nor a pickle); check the path", field)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=head == _ZIP_MAGIC)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise _refuse(path, f"is damaged and cannot be unpickled ({_first_reason(error)}); fetch it again", field) from None
        raise _refuse(
            path,
            "holds Python objects besides tensors, which are not loaded for safety (loading them could run code "
            "from the file). Ask its publisher for a .safetensors version of the weights and pass that file instead",
            field,
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise _refuse(path, f"is truncated or damaged ({_first_reason(error)}); fetch it again", field) from None


def load_safetensors(path: str | Path, *, field: str = "backbone_options", extra: str = "") -> dict[str, torch.Tensor]:
    """The tensors of the ``.safetensors`` file ``path``; ``extra`` names the install extra."""
    path = Path(path)
    try:
        from safetensors.torch import load_file
    except ImportError:
        hint = f": pip install 'fifo-diffusion[{extra}]'" if extra else ""
        raise ConfigError(f"reading {path} needs the safetensors package{hint}", field=field) from None
    _check_not_empty(path, field)
    try:
        return load_file(str(path))
    except Exception as error:  # noqa: BLE001 - safetensors raises its own SafetensorError and others
        raise _refuse(path, f"is not a readable .safetensors file, truncated or damaged ({_first_reason(error)}); fetch it again", field) from None

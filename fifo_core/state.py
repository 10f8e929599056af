"""A run's state on disk: what ``fifo-diffusion resume DIR`` needs to go on exactly where a run stopped.

Every random draw of a run is keyed by ``(seed, stream, index)`` (:mod:`fifo_core.noise`), so the
queue and a few counters are all the sampling loop needs; the state adds what lies downstream:

* the sampler's position: the queue's latents, levels and frame ids, the next iteration and the
  id of the next latent to enter (:class:`~fifo_core.sampling.SamplerPosition`);
* the decoder's state (the latents a temporal VAE keeps for context, a causal VAE's convolution
  cache; nothing for a per-frame VAE) and the frames already decoded but not yet handed out;
* the video frames handed out so far, and how many frames each output holds;
* the run's settings (the prompt timeline resolved, so a timeline file may change or go), the
  backbone's name and options, and a fingerprint of the backbone (latent shape, level grid).

One file, ``DIR/state.safetensors``: tensors in safetensors (loading runs no code), the rest as
JSON in its metadata. It is written to a temporary file in ``DIR``, flushed to disk and renamed
over the previous one (``os.replace``), so a crash while saving leaves the previous state whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fifo_core.config import RunConfig
from fifo_core.errors import ConfigError
from fifo_core.queue import LatentQueue
from fifo_core.sampling import FifoSampler, SamplerPosition

STATE_FILE = "state.safetensors"
STATE_FORMAT = 1
_METADATA_KEY = "fifo_diffusion_state"
_PARTIAL_PREFIX = f".{STATE_FILE}."


def project_version() -> str:
    try:
        return metadata.version("fifo-diffusion")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def backbone_fingerprint(sampler: FifoSampler) -> dict[str, Any]:
    """What must not change under a saved queue: the latent shape and the level grid (the
    backbone's noise schedule as this run's settings sample it)."""
    digest = hashlib.sha256()
    for values in (sampler.grid.timesteps, sampler.grid.signal, sampler.grid.noise):
        digest.update(values.double().cpu().numpy().tobytes())
    return {"latent_shape": list(sampler.noise.latent_shape), "grid": digest.hexdigest()[:16]}


@dataclass
class SinkPosition:
    """An output of the run and how many frames it holds."""

    target: str
    frames: int


@dataclass
class RunState:
    """Everything a resumed run needs (see the module's docstring)."""

    config: RunConfig
    backbone: str
    fingerprint: dict[str, Any]
    position: SamplerPosition
    frames: int  # video frames the run has made and handed out (the clip given with --include-init not counted)
    sinks: list[SinkPosition]
    decoder: dict[str, torch.Tensor] = field(default_factory=dict)
    pending: list[np.ndarray] = field(default_factory=list)  # decoded, not yet handed out
    version: str = field(default_factory=project_version)
    saved_at: float = field(default_factory=time.time)

    def describe(self) -> str:
        return f"{self.frames} frames made, next iteration {self.position.iteration}, backbone {self.backbone!r}"


def _tensors(state: RunState) -> dict[str, torch.Tensor]:
    queue = state.position.queue
    tensors = {
        "queue.latents": queue.latents.detach().cpu().contiguous(),
        "queue.levels": queue.levels.cpu().contiguous(),
        "queue.frame_ids": queue.frame_ids.cpu().contiguous(),
    }
    if state.pending:
        tensors["pending"] = torch.from_numpy(np.ascontiguousarray(np.stack(state.pending)))
    tensors |= {f"decoder.{key}": value.detach().cpu().contiguous() for key, value in state.decoder.items()}
    return tensors


def _metadata(state: RunState) -> dict[str, Any]:
    queue = state.position.queue
    return {
        "format": STATE_FORMAT,
        "version": state.version,
        "backbone": state.backbone,
        "fingerprint": state.fingerprint,
        "config": state.config.model_dump(mode="json"),
        "iteration": state.position.iteration,
        "next_frame": state.position.next_frame,
        "context": queue.context,
        "num_levels": queue.num_levels,
        "frames": state.frames,
        "sinks": [{"target": sink.target, "frames": sink.frames} for sink in state.sinks],
        "saved_at": state.saved_at,
    }


def save_state(folder: str | Path, state: RunState) -> Path:
    """Write ``state`` to ``folder/state.safetensors`` atomically; returns the file's path."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = save(_tensors(state), metadata={_METADATA_KEY: json.dumps(_metadata(state))})
    final = folder / STATE_FILE
    partial = folder / f"{_PARTIAL_PREFIX}{os.getpid()}.partial"
    _write_durably(partial, data)
    os.replace(partial, final)
    _sync_folder(folder)
    return final


def _write_durably(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)  # the rename itself reaches the disk
    except OSError:
        pass
    finally:
        os.close(descriptor)


def holds_state(folder: str | Path) -> bool:
    return (Path(folder) / STATE_FILE).is_file()


def check_new_state_folder(folder: str | Path) -> None:
    """Refuse ``--state DIR`` for a new run when ``DIR`` holds a saved run or cannot be created;
    creates nothing."""
    folder = Path(folder)
    if holds_state(folder):
        raise ConfigError(
            f"{str(folder)!r} already holds the state of a run; continue it with `fifo-diffusion resume {folder}`, "
            "or give this run an empty folder",
            field="state",
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"the state folder {str(folder)!r} is a file; give a folder (created if missing)", field="state")
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create or write the state folder {str(folder)!r}: {str(existing)!r} is not a writable folder", field="state")


def load_state(folder: str | Path) -> RunState:
    """Read the state saved in ``folder``: tensors through safetensors, settings as JSON, no code
    run. Refuses a state of another format or another version of fifo-diffusion."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise ConfigError(
            f"{str(folder)!r} holds no saved run (no {STATE_FILE}); give the folder a run was started with "
            "`fifo-diffusion generate ... --state DIR`",
            field="state",
        )
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
        values = json.loads(header[_METADATA_KEY])
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise ConfigError(
            f"{str(path)!r} is not a readable fifo-diffusion state ({type(error).__name__}: {' '.join(str(error).split())[:200]}); "
            "it may be damaged: start the run again",
            field="state",
        ) from None
    version = values.get("version")
    if values.get("format") != STATE_FORMAT or version != project_version():
        raise ConfigError(
            f"{str(path)!r} was saved by fifo-diffusion {version} (state format {values.get('format')}), and this is "
            f"fifo-diffusion {project_version()} (state format {STATE_FORMAT}); resume it with the version that saved it "
            f"(pip install fifo-diffusion=={version}), or start the run again",
            field="state",
        )
    queue = LatentQueue(
        latents=tensors["queue.latents"],
        levels=tensors["queue.levels"],
        frame_ids=tensors["queue.frame_ids"],
        context=int(values["context"]),
        num_levels=int(values["num_levels"]),
    )
    pending = list(tensors["pending"].numpy()) if "pending" in tensors else []
    return RunState(
        config=RunConfig.parse(values["config"]),
        backbone=values["backbone"],
        fingerprint=values["fingerprint"],
        position=SamplerPosition(queue, iteration=int(values["iteration"]), next_frame=int(values["next_frame"])),
        frames=int(values["frames"]),
        sinks=[SinkPosition(sink["target"], int(sink["frames"])) for sink in values["sinks"]],
        decoder={key.removeprefix("decoder."): value for key, value in tensors.items() if key.startswith("decoder.")},
        pending=pending,
        version=version,
        saved_at=float(values.get("saved_at", 0.0)),
    )


def check_same_backbone(state: RunState, name: str, fingerprint: dict[str, Any]) -> None:
    """Refuse to continue ``state``'s queue with a backbone other than the one that made it."""
    if name != state.backbone:
        raise ConfigError(
            f"the saved run was made by backbone {state.backbone!r}, and this one would use {name!r}; "
            f"its queue holds {state.backbone}'s latents: resume it with {state.backbone!r} (leave --backbone out)",
            field="backbone",
        )
    if fingerprint != state.fingerprint:
        raise ConfigError(
            f"backbone {name!r} as loaded now does not match the one that saved the run (latent shape and level grid "
            f"{fingerprint} now, {state.fingerprint} saved); its weights, schedule or options changed: resume with the "
            "same model and options, or start the run again",
            field="backbone",
        )

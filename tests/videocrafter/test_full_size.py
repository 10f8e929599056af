"""The full-size VideoCrafter2 with random weights in the original key layout (opt in: --run-slow).

Writes a ``model.ckpt`` with all 2,039 keys of the released checkpoint (float16 to keep it to
3.7 GB), loads it strictly through the backbone, runs the U-Net once with per-frame timesteps and
decodes a frame. Needs about 12 GB of free memory and a few minutes on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fifo_core.api import load_backbone
from fifo_videocrafter.checkpoint import expected_shapes, read_checkpoint
from fifo_videocrafter.config import VIDEOCRAFTER2
from fifo_videocrafter.schedule import checkpoint_buffers


def random_original_checkpoint(path: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    buffers = checkpoint_buffers(VIDEOCRAFTER2.schedule)
    state = dict(buffers)
    for key, shape in expected_shapes(VIDEOCRAFTER2).items():
        if key in buffers:
            continue
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            state[key] = (torch.randn(shape, generator=generator) * fan_in**-0.5).half()
        else:
            state[key] = torch.ones(shape, dtype=torch.float16) if key.endswith("weight") else torch.zeros(shape, dtype=torch.float16)
    torch.save({"state_dict": state}, path)
    return path


@pytest.mark.slow
def test_full_size_videocrafter2_loads_strictly_and_runs(tmp_path: Path) -> None:
    checkpoint = random_original_checkpoint(tmp_path / "model.ckpt")
    assert len(read_checkpoint(checkpoint)) == 2039
    backbone = load_backbone("videocrafter2", {"checkpoint": str(checkpoint), "device": "cpu", "dtype": "bfloat16"})
    assert sum(p.numel() for p in backbone.unet.parameters()) == 1_413_284_420
    height, width = 64, 64  # latents 4 x 8 x 8: the smallest size the U-Net takes
    text = backbone.encode_prompt("a red panda eating bamboo")
    assert text.shape == (77, 1024)
    latents = torch.randn(1, 4, 2, *backbone.latent_shape(height, width)[1:], generator=torch.Generator().manual_seed(1))
    output = backbone.predict(latents, torch.tensor([[900.0, 950.0]]), [text])
    assert output.shape == latents.shape and torch.isfinite(output).all()
    frame = backbone.decode(latents[0, :, 0])
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8

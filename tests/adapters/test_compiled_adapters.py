"""The ``compile`` option of the diffusers adapters: it reaches the denoiser, and what dynamo
captures (the per-frame timestep shims' hooks included) gives the eager model's output.

The capture is checked with the ``aot_eager`` backend (dynamo's graph, run without inductor's code
generation, which takes minutes on two CPU cores); inductor's own numerics are checked on a small
module in tests/core/test_compiled.py and measured on the GPU (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fifo_core.api import load_backbone
from fifo_core.compiled import CompiledDenoiser

CPU = torch.device("cpu")
FAMILIES = {  # backbone name, folder fixture, latents 'c f h w' of one window, module attribute
    "zeroscope-v2-576w": ("unet3d_folder", (4, 4, 8, 8), "unet"),
    "latte-1": ("latte_folder", (4, 4, 8, 8), "transformer"),
    "wan2.1-t2v-1.3b": ("wan_folder", (4, 3, 8, 8), "transformer"),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_compiled_denoiser_gives_the_eager_output_at_changing_per_frame_timesteps(name: str, request: pytest.FixtureRequest) -> None:
    fixture, shape, attribute = FAMILIES[name]
    options = {"model": str(request.getfixturevalue(fixture)), "device": "cpu", "dtype": "float32", "compile": "on"}
    if name != "zeroscope-v2-576w":
        options["max_sequence_length"] = 16
    backbone = load_backbone(name, options)
    assert backbone.denoiser.mode == "on"  # the option reached the backbone (compiling is lazy)
    module = getattr(backbone, attribute)
    eager = CompiledDenoiser(module, "off", CPU)
    backbone.denoiser = CompiledDenoiser(module, "on", CPU, backend="aot_eager")
    prompt = backbone.encode_prompt("a red panda")
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):  # new timesteps each call: a shim whose embedding were baked into the graph would fail
        latents = torch.randn(2, *shape, generator=generator)
        timesteps = (torch.rand(2, shape[1], generator=generator) * 900 + 50).round()
        compiled = backbone.predict(latents, timesteps, [prompt, prompt])
        backbone.denoiser, compiled_denoiser = eager, backbone.denoiser
        reference = backbone.predict(latents, timesteps, [prompt, prompt])
        backbone.denoiser = compiled_denoiser
        error = ((compiled.float() - reference.float()).abs().max() / reference.float().abs().max()).item()
        assert error < 1e-5, f"{name}: compiled differs from eager by {error:.2e} (relative)"
    assert backbone.denoiser.compiled_shapes == 1

"""Compiled model calls (fifo_core.compiled): modes, refusals, and inductor's output against eager."""

from __future__ import annotations

import pytest
import torch

from fifo_core.compiled import CompiledDenoiser, eager_calls, resolve_compile_mode
from fifo_core.errors import ConfigError

CPU = torch.device("cpu")


class TinyDenoiser(torch.nn.Module):
    """A convolution, a time embedding and attention: the kinds of layer the real denoisers use."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(4, 16, 3, padding=1)
        self.time = torch.nn.Linear(1, 16)
        self.attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.out = torch.nn.Conv3d(16, 4, 1)

    def forward(self, latents: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        hidden = torch.nn.functional.silu(self.conv(latents) + self.time(timesteps[:, None])[:, :, None, None, None])
        tokens = hidden.flatten(2).transpose(1, 2)
        attended, _ = self.attention(tokens, tokens, tokens)
        return self.out((tokens + attended).transpose(1, 2).reshape(hidden.shape))


def test_auto_compiles_with_cuda_graphs_on_cuda_and_not_on_the_cpu() -> None:
    assert resolve_compile_mode("auto", torch.device("cuda")) == "cuda-graphs"
    assert resolve_compile_mode("auto", CPU) == "off"
    assert resolve_compile_mode("on", CPU) == "on"


def test_cuda_graphs_on_the_cpu_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="compile=on or compile=off"):
        resolve_compile_mode("cuda-graphs", CPU)


def test_off_calls_the_module_itself() -> None:
    module = TinyDenoiser()
    denoiser = CompiledDenoiser(module, "off", CPU)
    assert denoiser._call is module
    latents = torch.randn(2, 4, 3, 4, 4)
    assert torch.equal(denoiser(latents, torch.tensor([1.0, 2.0])), module(latents, torch.tensor([1.0, 2.0])))
    assert denoiser.compile_seconds == 0.0


def test_inductor_output_equals_eager_within_float32_rounding_and_each_shape_compiles_once() -> None:
    torch.set_num_threads(1)
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    module = TinyDenoiser().eval()
    denoiser = CompiledDenoiser(module, "on", CPU)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for batch in (2, 2, 3):  # a repeated shape, then a new one
            latents = torch.randn(batch, 4, 3, 4, 4, generator=generator)
            timesteps = torch.rand(batch, generator=generator) * 999
            eager, compiled = module(latents, timesteps), denoiser(latents, timesteps)
            assert compiled.shape == eager.shape
            assert ((compiled - eager).abs().max() / eager.abs().max()).item() < 1e-5
    assert denoiser.compiled_shapes == 2
    assert denoiser.compile_seconds > 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs_before == 2


def test_calls_inside_eager_calls_run_the_module_and_compile_nothing() -> None:
    module = TinyDenoiser().eval()
    denoiser = CompiledDenoiser(module, "on", CPU, backend="aot_eager")
    latents, timesteps = torch.randn(2, 4, 3, 4, 4), torch.tensor([5.0, 9.0])
    with torch.no_grad():
        with eager_calls():
            assert torch.equal(denoiser(latents, timesteps), module(latents, timesteps))
            with eager_calls(False):  # an inner block cannot switch compiling back on
                denoiser(latents, timesteps)
        assert denoiser.compiled_shapes == 0
        with eager_calls(False):
            denoiser(latents, timesteps)
    assert denoiser.compiled_shapes == 1

"""Compiled model calls (fifo_core.compiled): modes, refusals, inductor's output against eager, and
the fp8 and channels-last options."""

from __future__ import annotations

import pytest
import torch

from fifo_core.compiled import CompiledDenoiser, eager_calls, resolve_compile_mode, use_channels_last
from fifo_core.errors import ConfigError
from fifo_core.float8 import Float8Linear

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


@pytest.mark.parametrize("mode", ["cuda-graphs", "max-autotune"])
def test_cuda_graph_modes_on_the_cpu_are_refused_with_the_fix(mode: str) -> None:
    with pytest.raises(ConfigError, match=f"compile={mode} needs a CUDA device.*use compile=on or compile=off"):
        resolve_compile_mode(mode, CPU)
    assert resolve_compile_mode(mode, torch.device("cuda")) == mode


def test_an_unknown_mode_is_refused_with_the_modes_listed() -> None:
    with pytest.raises(ConfigError, match="expected one of auto, off, on, cuda-graphs, max-autotune"):
        resolve_compile_mode("fast", CPU)


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


class TinyConvolutions(torch.nn.Module):
    """A 2-D and a 3-D convolution, frame by frame then across frames, as VideoCrafter's U-Net."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.spatial = torch.nn.Conv2d(4, 16, 3, padding=1)
        self.temporal = torch.nn.Conv3d(16, 4, 3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:  # 'b c f h w'
        b, c, f, h, w = latents.shape
        frames = self.spatial(latents.transpose(1, 2).reshape(b * f, c, h, w))
        return self.temporal(frames.reshape(b, f, -1, h, w).transpose(1, 2))


def test_channels_last_changes_the_strides_of_convolution_weights_and_not_the_output() -> None:
    module = TinyConvolutions().eval()
    latents = torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        eager = module(latents)
        denoiser = CompiledDenoiser(module, "on", CPU, backend="aot_eager", channels_last=True)
        assert denoiser.channels_last_convolutions == 2
        assert module.spatial.weight.is_contiguous(memory_format=torch.channels_last)
        assert module.temporal.weight.is_contiguous(memory_format=torch.channels_last_3d)
        assert not module.temporal.weight.is_contiguous()
        assert (module(latents) - eager).abs().max().item() < 1e-5
        assert (denoiser(latents) - eager).abs().max().item() < 1e-5
    assert use_channels_last(torch.nn.Linear(4, 4)) == 0


def test_fp8_swaps_the_linears_of_the_module_it_wraps() -> None:
    module = TinyDenoiser().eval()
    assert CompiledDenoiser(module, "off", CPU, fp8=True).float8_linears == 0  # time has 1 input feature; out_proj is not called
    module.extra = torch.nn.Linear(16, 16)
    assert CompiledDenoiser(module, "on", CPU, backend="aot_eager", fp8=True).float8_linears == 1
    assert isinstance(module.extra, Float8Linear)
    assert CompiledDenoiser(TinyDenoiser(), "off", CPU).float8_linears == 0

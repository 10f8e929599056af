"""fp8 linear layers (fifo_core.float8): their error against nn.Linear, the swap, casts, compiling,
and the refusal of GPUs without fp8 matrix products."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fifo_core.errors import ConfigError
from fifo_core.float8 import Float8Linear, use_float8_linears

CPU = torch.device("cpu")
# ||fp8 - exact|| / ||exact||, measured over 20 seeds in float32 and bfloat16 alike: 0.030 to 0.036
# for one layer, 0.008 to 0.010 for TinyBlock (its residual carries the input exactly); e4m3's 3
# mantissa bits, see the module notes of fifo_core/float8.py
FP8_RELATIVE_ERROR = 0.05


class TinyBlock(nn.Module):
    """A transformer-style feed-forward block: two fp8-able linears, one too narrow (20 features)
    and attention, whose ``out_proj`` nn.MultiheadAttention reads without calling it."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.up = nn.Linear(64, 128)
        self.down = nn.Linear(128, 64)
        self.narrow = nn.Linear(20, 64)
        self.attention = nn.MultiheadAttention(64, 4, batch_first=True)

    def forward(self, tokens: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        hidden = tokens + self.down(nn.functional.gelu(self.up(tokens))) + self.narrow(extra)
        attended, _ = self.attention(hidden, hidden, hidden)
        return hidden + attended


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def inputs(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 7, 64, generator=generator).to(dtype), torch.randn(2, 7, 20, generator=generator).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seed", range(3))
def test_a_float8_linear_is_within_the_measured_error_of_nn_linear(dtype: torch.dtype, seed: int) -> None:
    torch.manual_seed(seed)
    linear = nn.Linear(64, 48).to(dtype)
    x = inputs(seed, dtype)[0]
    exact = nn.functional.linear(x.float(), linear.weight.float(), linear.bias.float())
    output = Float8Linear.from_linear(linear)(x)
    assert output.dtype == dtype and output.shape == (2, 7, 48)
    assert relative_error(output, exact) < FP8_RELATIVE_ERROR


def test_it_takes_its_input_by_nn_linears_keyword() -> None:
    # diffusers' motion modules call proj_in(input=hidden_states)
    torch.manual_seed(0)
    linear = nn.Linear(32, 16)
    x = torch.randn(3, 32)
    module = Float8Linear.from_linear(linear)
    assert torch.equal(module(input=x), module(x))


def test_an_all_zero_row_gives_the_bias_not_nan() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(32, 16)
    with torch.no_grad():
        linear.weight[3] = 0
    output = Float8Linear.from_linear(linear)(torch.zeros(5, 32))
    assert torch.allclose(output, linear.bias.expand(5, 16), atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_block_swapped_counts_its_linears_keeps_its_state_dict_and_stays_close(dtype: torch.dtype) -> None:
    block = TinyBlock().to(dtype).eval()
    reference = copy.deepcopy(block)
    before = {key: value.clone() for key, value in block.state_dict().items()}
    assert use_float8_linears(block, CPU) == 2  # up and down; narrow (20 features) and out_proj stay
    assert isinstance(block.up, Float8Linear) and isinstance(block.down, Float8Linear)
    assert type(block.narrow) is nn.Linear and not isinstance(block.attention.out_proj, Float8Linear)
    after = block.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[key], before[key]) for key in before)
    with torch.no_grad():
        assert relative_error(block(*inputs(1, dtype)), reference.float()(*(x.float() for x in inputs(1, dtype)))) < FP8_RELATIVE_ERROR


def test_the_swap_keeps_the_parameters_and_the_hooks_of_the_linear() -> None:
    block = TinyBlock()
    weight = block.up.weight
    calls = []
    handle = block.up.register_forward_pre_hook(lambda module, args: calls.append(type(module).__name__))
    use_float8_linears(block, CPU)
    assert block.up.weight is weight
    block(*inputs(0))
    assert calls == ["Float8Linear"]
    handle.remove()
    block(*inputs(0))
    assert calls == ["Float8Linear"]


def test_a_float32_copy_and_a_moved_module_requantize_their_weights() -> None:
    block = TinyBlock().to(torch.bfloat16).eval()
    reference = copy.deepcopy(block).float()
    use_float8_linears(block, CPU)
    copied = copy.deepcopy(block).float()
    assert copied.up.weight.dtype == torch.float32 and copied.up.weight_fp8.dtype == torch.float8_e4m3fn
    moved = copy.deepcopy(block).to(torch.float32)
    assert moved.down.weight_fp8.dtype == torch.float8_e4m3fn and moved.down.weight_scale.dtype == torch.float32
    x = tuple(value.float() for value in inputs(2))
    with torch.no_grad():
        exact = reference(*x)
        assert relative_error(copied(*x), exact) < FP8_RELATIVE_ERROR
        assert relative_error(moved(*x), exact) < FP8_RELATIVE_ERROR


def test_loading_a_state_dict_requantizes() -> None:
    block, other = TinyBlock(seed=0), TinyBlock(seed=1)
    use_float8_linears(block, CPU)
    block.load_state_dict(other.state_dict())
    x = inputs(3)
    with torch.no_grad():
        assert relative_error(block(*x), other(*x)) < FP8_RELATIVE_ERROR


def test_compiled_float8_linears_equal_eager_ones() -> None:
    block = TinyBlock().eval()
    use_float8_linears(block, CPU)
    compiled = torch.compile(block, backend="aot_eager", dynamic=False)
    x = inputs(4)
    with torch.no_grad():
        assert (compiled(*x) - block(*x)).abs().max().item() < 1e-6


def test_a_gpu_without_fp8_products_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    block = TinyBlock()
    with pytest.raises(ConfigError, match=r"compute capability 8.9 or newer .*this one is 8\.0: use -o fp8=false"):
        use_float8_linears(block, torch.device("cuda"))
    assert type(block.up) is nn.Linear  # refused before anything changed
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert use_float8_linears(block, torch.device("cuda")) == 2  # a Hopper passes the check (the weights stay on the CPU)

"""fp8 matrix products for a denoiser's linear layers: :class:`Float8Linear` and :func:`use_float8_linears`.

An approximation, not a faster way to compute the same thing. ``float8_e4m3fn`` keeps 3 mantissa
bits: rounding moves a (normal) input or weight value by up to 1/16 of itself, 2.3% on average for
Gaussian values, and a layer's output, a sum of products of two rounded values, ends about 3% off
as a whole. Measured in ``tests/core/test_float8.py``, 20 seeds each, float32 and bfloat16 inputs
alike: ||fp8 - exact|| / ||exact|| = 0.030 to 0.036 for one random 64 -> 48 layer, 0.008 to 0.010
for the tests' residual block (its ``TinyBlock``); the tests hold both below 0.05. On a real-size
VideoCrafter2 U-Net (random weights, an H200) the output moved by 0.20 of its range, and the
compiled call was 11% slower than float16's: quantizing every input on the fly costs more than
the faster products save there (docs/performance.md), so ``fp8`` is off by default.

Notation: ``x`` the input ``'m k'`` (every leading dimension flattened into ``m``), ``W`` the
weight ``'n k'``, ``q(.)`` rounding to e4m3, whose largest value is 448.

    s_x[i] = max_k |x[i, k]| / 448          one scale per input row, computed at every call
    s_W[j] = max_k |W[j, k]| / 448          one scale per output row (weight row), computed once
    y[i, j] ~ s_x[i] * s_W[j] * sum_k q(x[i, k] / s_x[i]) * q(W[j, k] / s_W[j])

Why row-wise scales: e4m3 keeps its 3 bits only from 2^-6 to 448 (below, subnormals lose them
one by one), and one scale for a whole tensor is set by its single largest value. Activations
can have outlier tokens (rows) far larger than the rest, which would push the other rows down
towards the subnormals, and weights' rows differ in size too. A scale per row puts each row's own
largest value at 448, so every row keeps the full precision. (Outlier channels within a row are
not helped: that would need scales along ``k``, which the kernel does not take.)
``torch._scaled_mm`` applies the scales inside the kernel (``'m 1'`` times ``'1 n'``), so they cost
next to nothing. The output is computed in bfloat16, then cast to the input's dtype.

Inference only; on CUDA ``torch._scaled_mm`` needs compute capability 8.9 or newer (Ada,
Hopper); the CPU runs it too, slowly (the tests do).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fifo_core.errors import ConfigError

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max  # 448.0
FP8_MULTIPLE = 16  # torch._scaled_mm wants both of a weight's sides to be multiples of 16
FP8_MIN_CAPABILITY = (8, 9)
_SMALLEST_AMAX = 1e-12  # an all-zero row gets this as its amax: it quantizes to zeros, not to NaN


def quantize_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` ``'m k'`` as e4m3 ``'m k'`` and float32 scales ``'m 1'``, ``values ~ e4m3 * scales``."""
    values = values.float()
    scales = values.abs().amax(dim=1, keepdim=True).clamp(min=_SMALLEST_AMAX) / E4M3_MAX
    return (values / scales).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scales


class Float8Linear(nn.Module):
    """Stands in for an ``nn.Linear`` (inference only), computing ``x W^T + b`` in fp8 (module notes).

    ``weight`` and ``bias`` are the linear layer's own Parameters, under the same names, so the
    state dict is unchanged; the quantized weight ``weight_fp8`` ``'n k'`` (e4m3) and its scales
    ``weight_scale`` ``'1 n'`` (float32) are non-persistent buffers. They are recomputed from
    ``weight`` whenever the module is moved or cast (``.to(...)``, ``.float()``, ``.half()``,
    which would otherwise turn the e4m3 buffer into float32) and after ``load_state_dict``; a
    change to ``weight`` made any other way needs :meth:`quantize_weight` afterwards.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.weight = weight
        self.bias = bias
        self.register_buffer("weight_fp8", None, persistent=False)
        self.register_buffer("weight_scale", None, persistent=False)
        self.quantize_weight()

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Float8Linear:
        """A :class:`Float8Linear` with ``linear``'s Parameters, training flag and hooks (an
        adapter's shim may hook a linear layer; the hooks' handles still remove them)."""
        module = cls(linear.weight, linear.bias)
        module.train(linear.training)
        for name, value in vars(linear).items():
            if "hook" in name:
                module.__dict__[name] = value  # the same dicts: a handle refers to its dict
        return module

    @torch.no_grad()
    def quantize_weight(self) -> None:
        """Recompute ``weight_fp8`` and ``weight_scale`` from ``weight``."""
        self.weight_fp8, scales = quantize_rows(self.weight.detach())
        self.weight_scale = scales.t().contiguous()

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # nn.Linear's name: models call proj_in(input=...)
        rows = input.reshape(-1, self.in_features)
        x_fp8, x_scale = quantize_rows(rows)
        output = torch._scaled_mm(
            x_fp8.contiguous(), self.weight_fp8.t(), scale_a=x_scale, scale_b=self.weight_scale, out_dtype=torch.bfloat16
        ).to(input.dtype)
        if self.bias is not None:
            output = output + self.bias.to(input.dtype)
        return output.reshape(*input.shape[:-1], self.out_features)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> Float8Linear:
        super()._apply(fn, *args, **kwargs)
        self.quantize_weight()  # fn cast the e4m3 buffer too (.float() makes it float32); redo it from the cast weight
        return self

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.quantize_weight()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, fp8=e4m3"


def check_float8_device(device: torch.device) -> None:
    """Refuse a device ``torch._scaled_mm`` cannot run e4m3 products on (CUDA below 8.9)."""
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ConfigError(
            f"fp8 runs on NVIDIA GPUs of compute capability 8.9 or newer and on the CPU; this backbone runs on {device}: "
            "use -o fp8=false",
            field="backbone_options.fp8",
        )
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < FP8_MIN_CAPABILITY:
        raise ConfigError(
            "fp8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper); "
            f"this one is {capability[0]}.{capability[1]}: use -o fp8=false",
            field="backbone_options.fp8",
        )


def use_float8_linears(module: nn.Module, device: torch.device) -> int:
    """Replace, in place, every ``nn.Linear`` in ``module`` whose sides are multiples of 16 by a
    :class:`Float8Linear` over the same Parameters; return how many were replaced.

    Only plain ``nn.Linear`` layers are replaced: a subclass may compute differently (and
    ``nn.MultiheadAttention`` reads its ``out_proj``'s weight without calling it). Refuses a CUDA
    device below compute capability 8.9 (:class:`~fifo_core.errors.ConfigError`).
    """
    check_float8_device(torch.device(device))
    replacements: dict[int, Float8Linear] = {}  # a layer shared by two parents stays one layer
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.in_features % FP8_MULTIPLE == 0 and child.out_features % FP8_MULTIPLE == 0:
                if id(child) not in replacements:
                    replacements[id(child)] = Float8Linear.from_linear(child)
                setattr(parent, name, replacements[id(child)])
    return len(replacements)

"""Compiled model calls: a backbone's denoiser through ``torch.compile``, with CUDA graphs.

Adapters wrap the network their ``predict`` calls (a U-Net or a transformer) in a
:class:`CompiledDenoiser` and call the wrapper instead; the ``compile`` option picks the mode:

* ``off``: the eager module, unchanged.
* ``on``: ``torch.compile`` with inductor's default mode (fused kernels, no CUDA graphs).
* ``cuda-graphs``: the same plus CUDA graphs (inductor's ``reduce-overhead``): in steady state
  FIFO calls the model with the same shapes every iteration, so each call replays one recorded
  graph and the CPU no longer launches kernels one by one.
* ``max-autotune``: inductor's ``max-autotune``: CUDA graphs as above, and each matrix product
  and convolution benchmarked against generated (Triton) kernels, the fastest kept; the compile
  takes several minutes.
* ``auto`` (the default): ``cuda-graphs`` on CUDA, ``off`` elsewhere (on the CPU the compile
  costs more than it saves for the sizes that run there).

Two more options change how the denoiser computes, compiled or not (:class:`CompiledDenoiser`
applies them to the module when it is built): ``fp8``, e4m3 matrix products in its linear layers
(:mod:`fifo_core.float8`; an approximation), and ``channels_last``, its convolution weights in
channels-last memory format (:func:`use_channels_last`; the same values, only the strides change,
so cuDNN need not convert between layouts inside every convolution).

Shapes are static, and calls made inside :func:`eager_calls` run eagerly: the sampler makes its
warm-up calls there (the clip start's first clip, and the ramp start's iterations before every
window moves), whose batch grows window by window. Compiling each of those shapes would cost a
minute apiece for a large model (measured: VideoCrafter2 recompiled at every warm-up size, about
70 s each on an H200, because its code specialises on the batch size). FIFO's steady state calls
the model with one shape for ever, so a run compiles once, at its first full iteration. The first
compiled call at each shape is timed, compile and CUDA-graph recording included, in
:attr:`CompiledDenoiser.compile_seconds`.

CUDA graphs replay into the same output buffers, so outputs are cloned before they are returned
(``cuda-graphs`` and ``max-autotune``): a caller may keep them while the next call runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal, Union, get_args

import torch

from fifo_core.errors import ConfigError
from fifo_core.float8 import use_float8_linears

CompileMode = Literal["auto", "off", "on", "cuda-graphs", "max-autotune"]

COMPILE_DESCRIPTION = (
    "torch.compile the denoiser: off, on (inductor), cuda-graphs (inductor + CUDA graphs), "
    "max-autotune (inductor's max-autotune: autotuned matrix and convolution kernels with CUDA graphs; "
    "compiles for several minutes); auto: cuda-graphs on CUDA, off on the CPU"
)
FP8_DESCRIPTION = (
    "fp8 (e4m3) matrix products in the denoiser's linear layers, row-wise scaled; an approximation, "
    "see docs/performance.md; needs compute capability 8.9+"
)
CHANNELS_LAST_DESCRIPTION = "channels-last memory format for the denoiser's convolutions"
# ``auto``: on CUDA, off elsewhere (the default of backbones where it was measured to pay)
ChannelsLast = Union[bool, Literal["auto"]]

# inductor's name for each mode
_INDUCTOR_MODES = {"on": "default", "cuda-graphs": "reduce-overhead", "max-autotune": "max-autotune"}
_CUDA_GRAPH_MODES = ("cuda-graphs", "max-autotune")  # CUDA only; outputs are cloned

_EAGER = ContextVar("fifo_eager_calls", default=False)


@contextmanager
def eager_calls(active: bool = True) -> Iterator[None]:
    """Within the block (when ``active``), compiled denoisers call their module eagerly."""
    token = _EAGER.set(active or _EAGER.get())
    try:
        yield
    finally:
        _EAGER.reset(token)


def resolve_compile_mode(mode: CompileMode, device: torch.device) -> CompileMode:
    """``auto`` as the mode it stands for on ``device``; CUDA graphs (``cuda-graphs``,
    ``max-autotune``) need a CUDA device."""
    if mode == "auto":
        return "cuda-graphs" if device.type == "cuda" else "off"
    if mode not in get_args(CompileMode):
        raise ConfigError(
            f"unknown compile mode {mode!r}; expected one of {', '.join(get_args(CompileMode))}", field="backbone_options.compile"
        )
    if mode in _CUDA_GRAPH_MODES and device.type != "cuda":
        raise ConfigError(
            f"compile={mode} needs a CUDA device (it uses CUDA graphs), but the backbone runs on {device}; "
            "use compile=on or compile=off",
            field="backbone_options.compile",
        )
    return mode


def use_channels_last(module: torch.nn.Module) -> int:
    """Give every convolution weight in ``module`` a channels-last memory format, in place:
    ``torch.channels_last`` for 2-D convolutions' 4-D weights, ``torch.channels_last_3d`` for 3-D
    ones' 5-D weights (the same values and Parameters, other strides). Returns how many changed."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    changed = 0
    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.conv._ConvNd) and layer.weight.dim() in formats:
            layer.weight.data = layer.weight.data.contiguous(memory_format=formats[layer.weight.dim()])
            changed += 1
    return changed


def _shape_key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype, value.device)
    if isinstance(value, (list, tuple)):
        return tuple(_shape_key(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _shape_key(item)) for key, item in value.items()))
    return value


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_cloned(item) for item in value)
    return value


class CompiledDenoiser:
    """Calls ``module`` eagerly or compiled, as ``mode`` says (see the module notes).

    Compiling leaves ``module`` as it is (its parameters, state dict and hooks are the eager
    module's); only calls through this wrapper are compiled. ``backend`` is ``torch.compile``'s
    (tests use ``aot_eager`` to check what dynamo captures without inductor's code generation).

    ``fp8`` and ``channels_last`` change ``module`` itself, in place, when the wrapper is built,
    so its eager calls compute the same way: ``fp8`` replaces its linear layers by
    :class:`~fifo_core.float8.Float8Linear` ones over the same Parameters (the state dict is
    unchanged; :func:`~fifo_core.float8.use_float8_linears`, which refuses a GPU below compute
    capability 8.9), ``channels_last`` changes its convolution weights' strides
    (:func:`use_channels_last`; ``"auto"``: on a CUDA device only). :attr:`float8_linears` and :attr:`channels_last_convolutions`
    count the layers changed.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        mode: CompileMode,
        device: torch.device,
        backend: str = "inductor",
        *,
        fp8: bool = False,
        channels_last: ChannelsLast = False,
    ) -> None:
        if channels_last == "auto":
            channels_last = device.type == "cuda"
        self.module = module
        self.mode = resolve_compile_mode(mode, device)
        self.device = device
        self.float8_linears = use_float8_linears(module, device) if fp8 else 0
        self.channels_last_convolutions = use_channels_last(module) if channels_last else 0
        self.compile_seconds = 0.0
        self._shapes: set[Any] = set()
        self._call: Callable[..., Any] = module
        if self.mode != "off":
            inductor = backend == "inductor"
            self._call = torch.compile(module, backend=backend, mode=_INDUCTOR_MODES[self.mode] if inductor else None, dynamic=False)

    @property
    def compiled_shapes(self) -> int:
        """Distinct input shapes compiled so far."""
        return len(self._shapes)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.mode == "off" or _EAGER.get():
            return self.module(*args, **kwargs)
        key = (_shape_key(args), _shape_key(kwargs))
        first = key not in self._shapes
        if first:
            self._allow_recompiles(len(self._shapes) + 1)
            began = time.perf_counter()
        if self.mode in _CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs are no longer read from the graph
        output = self._call(*args, **kwargs)
        if self.mode in _CUDA_GRAPH_MODES:
            output = _cloned(output)
        if first:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.compile_seconds += time.perf_counter() - began
            self._shapes.add(key)
        return output

    @staticmethod
    def _allow_recompiles(shapes: int) -> None:
        # dynamo falls back to eager after a few recompiles of one function; each compiled shape is one
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        if getattr(config, name) < shapes + 2:
            setattr(config, name, shapes + 2)

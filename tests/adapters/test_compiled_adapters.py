"""The ``compile``, ``fp8`` and ``channels_last`` options of the diffusers adapters: they reach the
denoiser; what dynamo captures (the per-frame timestep shims' hooks included) gives the eager
model's output, and fp8 stays within its measured error of it.

The capture is checked with the ``aot_eager`` backend (dynamo's graph, run without inductor's code
generation, which takes minutes on two CPU cores); inductor's own numerics are checked on a small
module in tests/core/test_compiled.py and measured on the GPU (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fifo_core.api import load_backbone
from fifo_core.cli import _backbone_options, main
from fifo_core.compiled import CompiledDenoiser
from fifo_core.float8 import Float8Linear

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


# -- fp8 and channels_last -------------------------------------------------------------------------

# fp8 prediction against eager's, ||fp8 - eager|| / ||eager|| at per-frame timesteps, measured on the
# tiny models: zeroscope 0.001, Wan 0.030, Latte (16-wide, below) 0.038
FP8_PREDICTION_ERROR = 0.08


@pytest.fixture(scope="module")
def latte_16_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Latte with 16-wide attention (the tiny one's 8 features are too few for fp8), so
    the linear layer the per-frame shim hooks (``proj_out``) becomes fp8 too."""
    import diffusers

    from fifo_diffusers.common import random_fill_
    from fifo_diffusers.random_models import LATTE_TINY, latte_components, save_pipeline

    transformer = diffusers.LatteTransformer3DModel(**{**LATTE_TINY, "attention_head_dim": 8, "cross_attention_dim": 16})
    components = {**latte_components("tiny", seed=0), "transformer": random_fill_(transformer, 0)}
    return save_pipeline(components, tmp_path_factory.mktemp("latte-16"))


FP8_FAMILIES = {**FAMILIES, "latte-1": ("latte_16_folder", *FAMILIES["latte-1"][1:])}


def hooks(module: torch.nn.Module) -> int:
    return sum(len(layer._forward_pre_hooks) + len(layer._forward_hooks) for layer in module.modules())


@pytest.mark.parametrize("name", sorted(FP8_FAMILIES))
def test_fp8_and_channels_last_from_the_command_line_reach_the_denoiser_and_stay_close(name: str, request: pytest.FixtureRequest) -> None:
    fixture, shape, attribute = FP8_FAMILIES[name]
    options = {"model": str(request.getfixturevalue(fixture)), "device": "cpu", "dtype": "float32"}
    if name != "zeroscope-v2-576w":
        options["max_sequence_length"] = 16
    eager = load_backbone(name, options)
    backbone = load_backbone(name, {**options, **_backbone_options(("fp8=true", "channels_last=true"))})
    module = getattr(backbone, attribute)
    swapped = sum(isinstance(layer, Float8Linear) for layer in module.modules())
    assert backbone.denoiser.float8_linears == swapped > 0
    assert backbone.denoiser.channels_last_convolutions > 0
    assert hooks(module) == hooks(getattr(eager, attribute))  # the shims' hooks on swapped layers (Latte's proj_out) moved with them
    prompt = backbone.encode_prompt("a red panda")
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, *shape, generator=generator)
    timesteps = (torch.rand(2, shape[1], generator=generator) * 900 + 50).round()  # per frame: Latte's shim hooks an fp8 layer
    fp8, reference = backbone.predict(latents, timesteps, [prompt, prompt]), eager.predict(latents, timesteps, [prompt, prompt])
    error = ((fp8 - reference).norm() / reference.norm()).item()
    assert error < FP8_PREDICTION_ERROR, f"{name}: fp8 differs from eager by {error:.3f} (relative)"


def test_a_run_with_fp8_and_channels_last_makes_its_frames(unet3d_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    result = CliRunner().invoke(
        main,
        ["generate", "a red circle moving left", "--backbone", "zeroscope-v2-576w", "--model", str(unet3d_folder),
         "-o", "device=cpu", "-o", "fp8=true", "-o", "channels_last=true", "--height", "16", "--width", "16",
         "--f", "4", "--n", "1", "--frames", "3", "--quiet", "--sink", f"{folder}/"],
    )
    assert result.exit_code == 0, result.output
    assert len(list(folder.glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("fp8=maybe", "option 'fp8': Input should be a valid boolean"),
        ("channels_last=sideways", "option 'channels_last': Input should be a valid boolean"),
        ("compile=max-autotune", "compile=max-autotune needs a CUDA device"),
    ],
)
def test_bad_values_are_refused_before_any_output(option: str, message: str, unet3d_folder: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["generate", "a red circle", "--backbone", "zeroscope-v2-576w", "--model", str(unet3d_folder), "-o", "device=cpu",
         "-o", option, "--frames", "3", "--quiet", "--sink", str(tmp_path / "out.mp4")],
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out.mp4").exists()

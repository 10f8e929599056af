"""The VideoCrafter backbones: registration, per-frame timesteps, options, FIFO end to end."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fifo_videocrafter.plugin
from fifo_core.testing import BackboneConformance
from fifo_core.api import RunConfig, iter_frames, load_backbone
from fifo_core.cli import main
from fifo_core.errors import ConfigError
from fifo_core.plugins import Plugins, default_plugins

from .conftest import VIDEO
from .seeded import uniform


@pytest.fixture(scope="module")
def backbone(tiny_options):
    return load_backbone("videocrafter2", tiny_options)


class TestVideoCrafterConformance(BackboneConformance):
    video_size = VIDEO


def test_registered_through_the_plugin_module_with_the_paper_defaults() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(fifo_videocrafter.plugin)
    assert set(plugins.backbones()) == {"videocrafter2", "videocrafter1", "videocrafter1-1024"}
    assert plugins.backbone("vc2").name == "videocrafter2"
    d = plugins.backbone("videocrafter2").defaults
    assert (d.height, d.width, d.window, d.partitions, d.sampler, d.eta, d.guidance_scale, d.fps) == (
        320, 512, 16, 4, "ddim", 1.0, 12.0, 10.0
    )
    assert plugins.backbone("videocrafter1-1024").defaults.width == 1024


def test_entry_point_is_installed() -> None:
    assert "videocrafter2" in default_plugins().backbones()


@torch.no_grad()
def test_shared_timestep_gives_exactly_the_per_clip_output(backbone) -> None:
    latents = uniform((2, 4, 4, 8, 8), "shared.x")
    conditioning = [backbone.encode_prompt("a red panda"), backbone.encode_prompt("")]
    per_clip = torch.tensor([731.0, 42.0])
    context = torch.stack(conditioning)
    expected = backbone.unet(latents, per_clip, context, torch.full((2,), backbone.fps))
    assert torch.equal(backbone.predict(latents, per_clip[:, None].expand(2, 4), conditioning), expected)


@torch.no_grad()
def test_per_frame_timesteps_change_only_through_the_frames_that_differ(backbone) -> None:
    latents = uniform((2, 4, 4, 8, 8), "diagonal.x")
    conditioning = [backbone.encode_prompt("a red panda")] * 2
    shared = torch.tensor([[500.0] * 4, [500.0] * 4])
    diagonal = torch.tensor([[500.0, 560, 620, 680], [500.0] * 4])
    same, differ = backbone.predict(latents, shared, conditioning), backbone.predict(latents, diagonal, conditioning)
    assert not torch.allclose(same[0], differ[0])
    assert torch.equal(same[1], differ[1])  # rows do not leak into each other


def test_schedule_carries_videocrafter2s_signal_scale_unless_reference_compatible(backbone, tiny_options) -> None:
    scaled = backbone.schedule
    assert scaled.signal_scale is not None and abs(float(scaled.signal_scale[-1]) - 0.7) < 1e-12
    grid = scaled.grid(8)
    assert torch.allclose(grid.signal[-1], scaled.alphas_cumprod[999].sqrt() * 0.7)
    plain = load_backbone("videocrafter2", tiny_options | {"ignore_signal_scale": True}).schedule
    assert plain.signal_scale is None
    assert torch.equal(plain.alphas_cumprod, scaled.alphas_cumprod)


@torch.no_grad()
def test_fps_option_reaches_the_unet(backbone, tiny_options) -> None:
    eight = backbone
    twenty_eight = load_backbone("videocrafter2", tiny_options | {"fps": 28})
    latents = uniform((1, 4, 4, 8, 8), "fps.x")
    timesteps = torch.full((1, 4), 300.0)
    conditioning = [eight.encode_prompt("a cat")]
    assert not torch.allclose(eight.predict(latents, timesteps, conditioning), twenty_eight.predict(latents, timesteps, conditioning))


def test_sizes_the_unet_cannot_take_are_refused_with_a_hint(backbone) -> None:
    with pytest.raises(ConfigError, match="multiples of 4"):
        backbone.latent_shape(18, 16)


def test_unknown_option_lists_the_options(tiny_options) -> None:
    with pytest.raises(ConfigError, match="checkpoint"):
        load_backbone("videocrafter2", tiny_options | {"steps": 4})


def test_fifo_end_to_end_through_the_python_api(tiny_options) -> None:
    config = RunConfig(
        prompt="a red panda eating bamboo", backbone="videocrafter2", backbone_options=tiny_options,
        height=VIDEO[0], width=VIDEO[1], window=4, partitions=2, frames=3, seed=7,
    )
    frames = list(iter_frames(config))
    assert len(frames) == 3
    assert all(frame.shape == (*VIDEO, 3) and frame.dtype == np.uint8 for frame in frames)
    assert len({frame.tobytes() for frame in frames}) > 1
    again = list(iter_frames(config))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again))


def test_fifo_end_to_end_through_the_cli_into_an_mp4(tiny_files, tmp_path: Path) -> None:
    checkpoint, architecture = tiny_files
    video = tmp_path / "panda.mp4"
    result = CliRunner().invoke(
        main,
        [
            "generate", "a red panda eating bamboo", "--backbone", "videocrafter2",
            "--checkpoint", str(checkpoint), "--option", f"architecture={architecture}",
            "--option", "device=cpu", "--option", "fps=8",
            "--height", "16", "--width", "16", "--f", "4", "--n", "2", "--frames", "3", "--quiet",
            "--sink", str(video),
        ],
    )
    assert result.exit_code == 0, result.output
    frames, _seconds = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 3


def test_a_compiled_run_compiles_one_shape_after_the_warm_up_and_makes_the_eager_frames(tiny_options) -> None:
    """The ramp's warm-up batches grow window by window and run eagerly; the steady state's one
    shape compiles once. Dynamo's capture (``aot_eager``: no code generation) gives eager's frames."""
    from fifo_core.compiled import CompiledDenoiser

    config = RunConfig(prompt="a red panda", backbone="videocrafter2", height=VIDEO[0], width=VIDEO[1], window=4, partitions=3, frames=12, seed=3)
    eager = list(iter_frames(config, backbone=load_backbone("videocrafter2", tiny_options)))
    backbone = load_backbone("videocrafter2", {**tiny_options, "compile": "on"})
    assert backbone.denoiser.mode == "on"
    backbone.denoiser = CompiledDenoiser(backbone.unet, "on", torch.device("cpu"), backend="aot_eager")
    compiled = list(iter_frames(config, backbone=backbone))
    assert backbone.denoiser.compiled_shapes == 1
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(eager, compiled)) <= 1


def test_fp8_and_channels_last_options_change_the_unet_in_place(tiny_options) -> None:
    """fp8 (every linear layer of the tiny U-Net is 16-wide or more) is an approximation: 0.097 of
    the prediction (||fp8 - eager|| / ||eager||) measured here; channels-last changes only strides."""
    from fifo_core.float8 import Float8Linear

    eager = load_backbone("videocrafter2", tiny_options)
    channels_last = load_backbone("videocrafter2", {**tiny_options, "channels_last": True})
    fp8 = load_backbone("videocrafter2", {**tiny_options, "fp8": "true", "channels_last": "true"})
    assert fp8.denoiser.float8_linears == sum(isinstance(layer, Float8Linear) for layer in fp8.unet.modules()) > 0
    assert not any(type(layer) is torch.nn.Linear for layer in fp8.unet.modules())
    formats = {torch.nn.Conv2d: torch.channels_last, torch.nn.Conv3d: torch.channels_last_3d}
    convolutions = [layer for layer in channels_last.unet.modules() if type(layer) in formats]
    assert channels_last.denoiser.channels_last_convolutions == len(convolutions) > 0
    assert all(layer.weight.is_contiguous(memory_format=formats[type(layer)]) for layer in convolutions)
    prompt = eager.encode_prompt("a red panda")
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 4, *eager.latent_shape(*VIDEO)[1:], generator=generator)
    timesteps = (torch.rand(2, 4, generator=generator) * 900 + 50).round()
    reference = eager.predict(latents, timesteps, [prompt, prompt])
    assert (channels_last.predict(latents, timesteps, [prompt, prompt]) - reference).abs().max().item() < 1e-5
    error = ((fp8.predict(latents, timesteps, [prompt, prompt]) - reference).norm() / reference.norm()).item()
    assert error < 0.15


def test_channels_last_is_on_by_default_on_cuda_only(tiny_options) -> None:
    # measured to pay on an H200 (docs/performance.md); on the CPU the default leaves the U-Net as it is
    from fifo_core.compiled import CompiledDenoiser

    backbone = load_backbone("videocrafter2", tiny_options)
    assert backbone.denoiser.channels_last_convolutions == 0
    on_cuda = CompiledDenoiser(backbone.unet, "off", torch.device("cuda"), channels_last="auto")  # the U-Net stays on the CPU
    assert on_cuda.channels_last_convolutions > 0
    assert load_backbone("videocrafter2", {**tiny_options, "channels_last": "false"}).denoiser.channels_last_convolutions == 0


def test_a_resumed_run_may_switch_fp8_and_channels_last_on(tiny_options, tmp_path: Path) -> None:
    from fifo_core.api import generate, resume

    folder, state = tmp_path / "frames", tmp_path / "state"
    config = RunConfig(
        prompt="a red panda", backbone="videocrafter2", backbone_options=tiny_options, height=VIDEO[0], width=VIDEO[1],
        window=4, partitions=2, frames=3, seed=3, sinks=[f"{folder}/"],
    )
    generate(config, state_dir=state)
    summary = resume(state, frames=5, backbone_options={"fp8": True, "channels_last": True})
    assert summary.frames == 2  # made by the resume
    assert summary.config.backbone_options["fp8"] is True
    assert len(list(folder.glob("*.png"))) == 5

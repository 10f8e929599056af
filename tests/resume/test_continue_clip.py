"""Issue #18: ``--init-video`` / ``--init-image`` continue a given clip: the backbone encodes it,
the queue is filled from its end, and the first frames made are close to the clip's last frame,
while a clip of another colour gives frames far from it (so the check can fail). fifo-shapes is a
trained model, so its frames are compared in pixels; the tiny random diffusers and VideoCrafter
models cannot reconstruct anything, so for them the first clean latent is compared with the
encoded image (measured: about 0.1 to 3 from it, 34 to 59 from the other colour's encoding). A
backbone without an encoder refuses, creating nothing."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fifo_core.api import RunConfig, generate, load_backbone, make_sampler
from fifo_core.cli import main
from fifo_core.sink import SinkSettings
from fifo_sinks import Mp4Sink

from .helpers import mp4_frames, png_frames

PROMPT = "a red circle moving left on a blue background"


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def write_mp4(path: Path, frames: list[np.ndarray]) -> Path:
    sink = Mp4Sink(str(path), SinkSettings(fps=8.0))
    sink.reserve()
    with sink:
        for frame in frames:
            sink.write(frame)
    return path


def noisy_colour_clip(colour: tuple[int, int, int], frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    generator = np.random.default_rng(seed)
    base = np.array(colour, np.int16)
    return [np.clip(base + generator.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8) for _ in range(frames)]


@pytest.fixture(scope="module")
def shapes_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    generate(RunConfig(prompt=PROMPT, frames=12, seed=1, sinks=[str(folder / "clip.mp4")]))
    return folder / "clip.mp4"


@pytest.mark.timeout(120)
def test_fifo_shapes_continues_a_video_from_its_last_frame(shapes_clip: Path, tmp_path: Path) -> None:
    last = mp4_frames(shapes_clip)[-1]
    other = write_mp4(tmp_path / "green.mp4", noisy_colour_clip((40, 200, 60), 6, 128))
    continued = list(islice(make_sampler(RunConfig(prompt=PROMPT, init_video=str(shapes_clip), seed=2)).frames(), 4))
    from_other = list(islice(make_sampler(RunConfig(prompt=PROMPT, init_video=str(other), seed=2)).frames(), 4))
    assert max(mean_abs_error(frame, last) for frame in continued) < 10  # codec and model both within a few levels
    assert min(mean_abs_error(frame, last) for frame in from_other) > 60  # another clip: another start
    assert mean_abs_error(from_other[0], mp4_frames(other)[-1]) < 30


@pytest.mark.timeout(120)
def test_include_init_writes_the_clip_first_and_frames_counts_the_new_ones(tmp_path: Path) -> None:
    image = tmp_path / "still.png"
    still = noisy_colour_clip((200, 40, 40), 1, 128)[0]
    Image.fromarray(still).save(image)
    summary = generate(RunConfig(prompt=PROMPT, init_image=str(image), include_init=True, frames=5, sinks=[f"{tmp_path}/out/"]))
    frames = png_frames(tmp_path / "out")
    assert summary.frames == len(frames) == 6
    assert np.array_equal(frames[0], still)
    assert mean_abs_error(frames[1], still) < 25  # the model smooths the noise of the still away


def test_a_backbone_without_an_encoder_refuses_and_creates_nothing(tmp_path: Path) -> None:
    image = tmp_path / "still.png"
    Image.fromarray(noisy_colour_clip((200, 40, 40), 1, 64)[0]).save(image)
    result = CliRunner().invoke(main, ["generate", "x", "-b", "gaussian-ar1", "--init-image", str(image), "--sink", str(tmp_path / "out.mp4")])
    assert result.exit_code == 2
    assert "has no image encoder, so it cannot continue a clip" in result.output and "fifo-shapes" in result.output
    assert not (tmp_path / "out.mp4").exists()
    result = CliRunner().invoke(main, ["generate", "x", "--init-image", str(tmp_path / "missing.png"), "--sink", str(tmp_path / "out.mp4")])
    assert result.exit_code == 2 and "is not a file" in result.output and not (tmp_path / "out.mp4").exists()


def first_latent_near_the_encoded_image(backbone, tmp_path: Path, size: tuple[int, int], **settings) -> tuple[float, float]:
    """Distances of the first clean latent of a run continuing a red image to that image's
    encoding and to a green image's."""
    height, width = size
    red, green = tmp_path / "red.png", tmp_path / "green.png"
    Image.fromarray(noisy_colour_clip((200, 40, 40), 1, max(size))[0][:height, :width]).save(red)
    Image.fromarray(noisy_colour_clip((40, 200, 60), 1, max(size), seed=1)[0][:height, :width]).save(green)
    encoded = {}
    for name, path in (("red", red), ("green", green)):
        pixels = torch.from_numpy(np.asarray(Image.open(path), dtype=np.uint8).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
        encoded[name] = backbone.encode(pixels)[-1].float().cpu()
    config = RunConfig(prompt="a red circle", init_image=str(red), height=height, width=width, seed=0, **settings)
    first = next(make_sampler(config, backbone=backbone).latents()).latent.float().cpu()
    return float((first - encoded["red"]).norm()), float((first - encoded["green"]).norm())


# Many levels, so the first frame leaves the queue after one step from a nearly clean level.
TINY = {"window": 4, "partitions": 8, "lookahead": True, "guidance_scale": 1.0}


def sensitive_vae(backbone):
    """The tiny models' VAEs hold weights of about 0.05, which encode every picture to nearly the
    same latent (red and green 0.005 apart); standard-normal weights make the encoding depend on
    the picture, as a trained VAE's does."""
    from fifo_diffusers.common import random_fill_

    random_fill_(backbone.vae, seed=7, scale=1.0)
    return backbone


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("name", "folder", "size", "options"),
    [
        ("zeroscope-v2-576w", "unet3d_folder", (16, 16), {"dtype": "float32", "device": "cpu"}),
        ("animatediff", "animatediff_folder", (16, 16), {"motion_adapter": None, "device": "cpu"}),
        ("latte-1", "latte_folder", (16, 16), {"max_sequence_length": 16, "device": "cpu"}),
        ("wan2.1-t2v-1.3b", "wan_folder", (64, 64), {"max_sequence_length": 16, "device": "cpu"}),
        ("ltx-video", "ltx_folder", (64, 64), {"max_sequence_length": 16, "device": "cpu", "flow_shift": 3.0}),
    ],
)
def test_diffusers_backbones_continue_from_the_encoded_image(name, folder, size, options, request, tmp_path: Path) -> None:
    pytest.importorskip("diffusers")
    model = request.getfixturevalue(folder)
    backbone = sensitive_vae(load_backbone(name, {"model": str(model), **options}))
    to_own, to_other = first_latent_near_the_encoded_image(backbone, tmp_path, size, **TINY)
    assert to_own < 0.2 * to_other, (to_own, to_other)


@pytest.mark.timeout(300)
def test_videocrafter_continues_from_the_encoded_image(tiny_options, tmp_path: Path) -> None:
    backbone = sensitive_vae(load_backbone("videocrafter2", tiny_options))
    to_own, to_other = first_latent_near_the_encoded_image(backbone, tmp_path, (16, 16), **TINY)
    assert to_own < 0.2 * to_other, (to_own, to_other)

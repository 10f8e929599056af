"""The fifo-shapes backbone: the adapter conformance checks, per-frame timesteps, registration,
the training script at tiny scale (reproducible from its seed) and a short prompt-agreement run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fifo_shapes.plugin
from fifo_core.plugins import Plugins
from fifo_shapes.backbone import TRACKER_WEIGHTS_DIR, WEIGHTS_DIR, ShapesBackbone, ShapesTrackerBackbone, unknown_words
from fifo_shapes.train import TrainConfig, save, train
from fifo_core.testing import BackboneConformance


@pytest.fixture(scope="module")
def backbone() -> ShapesBackbone:
    return ShapesBackbone(threads=2)


class TestShapesConformance(BackboneConformance):
    video_size = (128, 128)
    window = 4  # the model is convolutional over frames; the mixin draws windows from an 8-level grid


def test_registered_as_fifo_shapes_through_its_plugin() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.register(fifo_shapes.plugin, name="shapes")
    spec = plugins.backbone("fifo-shapes")
    assert plugins.backbone("shapes") is spec
    assert spec.defaults.lookahead and spec.defaults.fps >= 8
    tracker = plugins.backbone("fifo-shapes-tracker")
    assert tracker.factory is ShapesTrackerBackbone and tracker.create().model.denoiser.tracker is not None


def _frames_with_the_unet_perturbed(backbone: ShapesBackbone, frames: int) -> tuple[list, list]:
    """Frames of one prompt as made, and with noise added to the U-Net's output in FIFO's loop
    (after the first clip's 16 calls, one per level of S = n * f = 16)."""
    from fifo_shapes.agreement import sampler_for

    prompt = "a red circle moving left on a blue background"
    made = list(sampler_for(backbone, prompt).frames(frames))
    denoiser = backbone.model.denoiser
    unet = denoiser._denoise
    calls = 0

    def perturbed(x, timesteps, prompts):
        nonlocal calls
        calls += 1
        v = unet(x, timesteps, prompts)
        return v if calls <= 16 else v + 0.5 * torch.randn(v.shape, generator=torch.Generator().manual_seed(calls))

    denoiser._denoise = perturbed
    try:
        return made, list(sampler_for(backbone, prompt).frames(frames))
    finally:
        del denoiser._denoise


def test_the_default_model_is_a_plain_diffusion_model_whose_frames_come_from_its_predictions(backbone: ShapesBackbone) -> None:
    """No tracker, no copying of one frame's estimate into the others: with noise added to the
    U-Net's output after the first clip every frame changes. The tracker model, by contrast,
    makes the same frames bit for bit: after its first clip it only moves what it has."""
    assert backbone.model.config.tracking is False and backbone.model.denoiser.tracker is None
    made, perturbed = _frames_with_the_unet_perturbed(backbone, 8)
    differences = [float(abs(a.astype(float) - b.astype(float)).mean()) for a, b in zip(made, perturbed)]
    assert all(difference > 1.0 for difference in differences), differences

    made, perturbed = _frames_with_the_unet_perturbed(ShapesTrackerBackbone(), 8)
    assert all((a == b).all() for a, b in zip(made, perturbed))


def test_prompt_words_outside_the_grammar_are_named_in_a_warning(backbone: ShapesBackbone) -> None:
    assert unknown_words("A red circle moving left on a blue background.") == []
    assert unknown_words("a red dog running left, a red dog") == ["dog", "running"]
    with pytest.warns(UserWarning, match="does not know the words 'dog', 'running'"):
        backbone.encode_prompt("a red dog running left")


def test_each_frame_uses_its_own_timestep(backbone: ShapesBackbone) -> None:
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 3, 8, 32, 32, generator=generator)
    condition = [backbone.encode_prompt("a red circle moving left")]
    timesteps = torch.full((1, 8), 500.0)
    base = backbone.predict(latents, timesteps, condition)
    changed = timesteps.clone()
    changed[0, 7] = 900.0
    other = backbone.predict(latents, changed, condition)
    # The changed frame's own output moves most: its level modulates its own features directly.
    change = (base - other).abs().mean(dim=(0, 1, 3, 4))
    assert int(change.argmax()) == 7 and float(change[7]) > 0


@pytest.mark.parametrize(("folder", "tracking"), [(WEIGHTS_DIR, False), (TRACKER_WEIGHTS_DIR, True)])
def test_shipped_weights_are_small_and_described(folder: Path, tracking: bool) -> None:
    weights = folder / "shapes.safetensors"
    assert weights.stat().st_size < 20 * 2**20
    metadata = json.loads((folder / "config.json").read_text())
    assert {"model", "training", "steps_done", "seconds", "device"} <= set(metadata)
    assert metadata["model"]["tracking"] is tracking


def test_training_runs_at_tiny_scale_and_is_reproducible(tmp_path: Path) -> None:
    config = TrainConfig(steps=4, batch=2, warmup=2)
    first, metadata = train(config, "cpu", log_every=0)
    second, _ = train(config, "cpu", log_every=0)
    save(first, metadata, tmp_path)
    state = load_file(str(tmp_path / "shapes.safetensors"))
    assert all(torch.equal(state[key], value) for key, value in second.state_dict().items())
    loaded = ShapesBackbone(weights=str(tmp_path))
    assert loaded.predict(torch.zeros(1, 3, 8, 32, 32), torch.zeros(1, 8), [loaded.encode_prompt("")]).shape == (1, 3, 8, 32, 32)


def test_short_prompt_agreement_of_the_shipped_model(backbone: ShapesBackbone) -> None:
    """A small version of benchmarks/prompt_agreement.py: the first five evaluation prompts (every
    motion once) over 40 frames each: 85.0% agreed on the machine that shipped the weights (the
    bouncing square, the fifth, is the weak one); the figure asserted leaves room for another
    machine's rounding, not for a failed video."""
    from fifo_shapes.agreement import measure_agreement

    agreement = measure_agreement(backbone, prompts=5, frames=40)
    print(agreement.describe())
    assert agreement.fraction() >= 0.75, agreement.describe()
    assert agreement.fraction("motion") >= 0.75, agreement.describe()
    assert agreement.fraction("background") >= 0.95, agreement.describe()


def test_motion_layers_start_at_zero_so_stage_two_begins_where_stage_one_ended(tmp_path: Path) -> None:
    from fifo_shapes.model import ShapesModel, ShapesModelConfig
    from fifo_shapes.train import _start_from

    torch.manual_seed(3)
    base = ShapesModel(ShapesModelConfig(widths=(8, 16)), token_ids=[1, 2, 3])
    for parameter in base.parameters():  # zero-initialised layers would hide a wrong mapping
        torch.nn.init.normal_(parameter, std=0.05)
    save(base, {"model": base.config.model_dump(mode="json")}, tmp_path)
    extended = ShapesModel(ShapesModelConfig(widths=(8, 16), motion=True), token_ids=[1, 2, 3])
    _start_from(extended, str(tmp_path))
    latents = torch.randn(2, 3, 8, 32, 32)
    timesteps = torch.randint(0, 1000, (2, 8)).float()
    prompts = torch.randn(2, base.config.embed_dim)
    tokens = torch.tensor([[3, 1, 2, 1] + [0] * 12, [3, 2, 2, 1, 2] + [0] * 11])
    with torch.no_grad():
        torch.testing.assert_close(extended.denoiser(latents, timesteps, prompts), base.denoiser(latents, timesteps, prompts))
        torch.testing.assert_close(extended.text(tokens), base.text(tokens))
    wider = ShapesModel(ShapesModelConfig(widths=(16, 16), motion=True), token_ids=[1, 2, 3])
    with pytest.raises((ValueError, RuntimeError)):
        _start_from(wider, str(tmp_path))


def test_training_levels_rise_along_diagonal_clips_and_lean_to_the_noisy_end() -> None:
    from fifo_shapes.train import noise_levels

    generator = torch.Generator().manual_seed(0)
    levels = noise_levels(4000, 8, TrainConfig(diagonal_fraction=1.0, high_noise_bias=1.0), 1000, generator)
    assert levels.min() >= 0 and levels.max() <= 999
    assert bool((levels[:, 1:] >= levels[:, :-1]).all()), "levels must not fall from first to last frame"
    assert float((levels[:, -1] - levels[:, 0]).float().mean()) > 100, "most clips span a real ramp"
    shared = noise_levels(4000, 8, TrainConfig(diagonal_fraction=0.0, high_noise_bias=1.0), 1000, generator)
    assert bool((shared == shared[:, :1]).all())
    biased = noise_levels(4000, 8, TrainConfig(diagonal_fraction=0.0, high_noise_bias=2.0), 1000, generator)
    assert 600 < float(biased.float().mean()) < 730 < 1000 and 430 < float(shared.float().mean()) < 570


def test_the_attribute_reader_rewards_embeddings_that_tell_the_words_apart() -> None:
    from fifo_shapes.train import AttributeReader
    from fifo_shapes.world import random_clips

    clips = random_clips(64, 2, torch.Generator().manual_seed(0))
    texts = [clips.caption(row, with_background=row % 2 == 0).text for row in range(64)]
    texts[0] = ""  # an empty caption carries no attributes and is left out
    reader = AttributeReader(32)
    labels = reader.labels(clips, texts)
    assert labels["background"][1] == len(reader.ATTRIBUTES["background"]) - 1  # "none": not in the caption
    captioned = torch.tensor([bool(text) for text in texts])
    # Embeddings that point along each label's row read back better than one shared embedding.
    telling = sum(torch.nn.functional.normalize(reader.rows[name], dim=-1)[labels[name]] for name in reader.ATTRIBUTES)
    shared = telling.mean(dim=0, keepdim=True).expand_as(telling)
    assert reader.loss(telling, labels, captioned) < reader.loss(shared, labels, captioned) - 0.5


def test_shipped_prompt_embeddings_tell_the_motion_words_apart(backbone: ShapesBackbone) -> None:
    """Stage 3's point: before it, "moving left" and "moving right" had cosine 0.999."""
    left, right = (backbone.encode_prompt(f"a red circle moving {way}").flatten() for way in ("left", "right"))
    assert float(torch.nn.functional.cosine_similarity(left, right, dim=0)) < 0.9

"""Stage 4 of fifo-shapes: the motion tracker and denoising in the shape's frame of reference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fifo_core.backbone import Row
from fifo_shapes.backbone import ShapesBackbone
from fifo_shapes.model import (
    SNAP_BELOW,
    STEPS,
    MotionTracker,
    ShapesModel,
    ShapesModelConfig,
    offsets_from_steps,
    roll_frames,
    snap_to_palette,
    step_index,
)
from fifo_shapes.train import TrainConfig, _start_from, save, train, true_steps
from fifo_shapes.world import MOTIONS, PALETTE, Caption, clips_for, palette_tensor, random_clips, render

TINY = ShapesModelConfig(widths=(8, 16), motion=True, tracking=True)


def test_rolling_frames_moves_each_frame_by_its_own_offset_and_back() -> None:
    clip = torch.randn(2, 3, 4, 32, 32)
    offsets = torch.tensor([[[0, 0], [1, 0], [-3, 2], [31, -1]], [[5, 5], [0, -1], [0, 0], [-1, -1]]])
    moved = roll_frames(clip, offsets)
    for row in range(2):
        for frame in range(4):
            dx, dy = offsets[row, frame].tolist()
            assert torch.equal(moved[row, :, frame], torch.roll(clip[row, :, frame], shifts=(dy, dx), dims=(1, 2)))
    assert torch.equal(roll_frames(moved, -offsets), clip)


@pytest.mark.parametrize("motion", MOTIONS)
def test_the_true_offsets_make_every_world_clip_stand_still(motion: str) -> None:
    """What stage 4 trains on: moved back by its offsets, a clip of any motion (including bounces
    off the walls) shows the first frame again and again."""
    clips = clips_for(Caption("red", "triangle", motion), batch=6, frames=40, generator=torch.Generator().manual_seed(1))
    steps = true_steps(clips)
    assert set(steps.flatten().tolist()) <= {-1, 0, 1}
    still = roll_frames(render(clips), -offsets_from_steps(steps))
    assert torch.equal(still, still[:, :, :1].expand_as(still))
    assert torch.equal(STEPS[step_index(steps)], steps)


def test_the_tracker_foresees_each_step_from_the_frames_before_it_only() -> None:
    """Step k -> k+1 comes from frames k-2 .. k: frame k+1 is what the step will place."""
    torch.manual_seed(0)
    tracker = MotionTracker(TINY)
    clip, levels, prompt = torch.randn(1, 3, 8, 32, 32), torch.rand(1, 8) * 1000, torch.randn(1, TINY.embed_dim)
    logits = tracker(clip, levels, prompt)
    assert logits.shape == (1, 7, len(STEPS))
    later = clip.clone()
    later[:, :, 5] += 1.0  # frame 5 ends step 4 -> 5 and starts step 5 -> 6
    changed = tracker(later, levels, prompt)
    torch.testing.assert_close(changed[:, :5], logits[:, :5])
    for step in (5, 6):  # steps 5 -> 6 and 6 -> 7 see frame 5
        assert not torch.allclose(changed[:, step], logits[:, step])


def test_a_tracking_denoiser_works_in_the_frame_its_offsets_give() -> None:
    torch.manual_seed(0)
    model = ShapesModel(TINY, token_ids=[1, 2, 3])
    for parameter in model.parameters():  # zero-initialised output layers would hide a wrong roll
        torch.nn.init.normal_(parameter, std=0.05)
    clip, levels, prompt = torch.randn(1, 3, 6, 32, 32), torch.rand(1, 6) * 1000, torch.randn(1, TINY.embed_dim)
    offsets = torch.tensor([[[0, 0], [1, 0], [2, 1], [3, 1], [3, 2], [4, 2]]])
    with torch.no_grad():
        still = roll_frames(clip, -offsets)
        v = model.denoiser._denoise(still, levels, prompt)
        torch.testing.assert_close(model.denoiser(clip, levels, prompt, offsets), roll_frames(v, offsets))
        shared = roll_frames(model.denoiser._lead_clean_frame(still, v, levels), offsets)
        torch.testing.assert_close(model.denoiser(clip, levels, prompt, offsets, share_clean=True), shared)
        # Without offsets the tracker's are used.
        own = model.denoiser.tracker.offsets(clip, levels, prompt)
        torch.testing.assert_close(model.denoiser(clip, levels, prompt), model.denoiser(clip, levels, prompt, own))


def test_both_halves_of_guidance_share_the_prompted_rows_frame_of_reference() -> None:
    """The core says which rows are one guided window (``rows``); the unconditional half takes the
    tracker's offsets for the window's prompt, in whichever call it lands."""
    torch.manual_seed(0)
    model = ShapesModel(TINY, token_ids=[1, 2, 3])
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    backbone = ShapesBackbone(model=model)
    latents, levels = torch.randn(1, 3, 4, 32, 32), torch.rand(1, 4) * 1000
    prompt, negative = torch.randn(TINY.embed_dim), torch.randn(TINY.embed_dim)
    rows = [Row(0, "conditional", prompt), Row(0, "unconditional", prompt)]
    together = backbone.predict(torch.cat([latents, latents]), torch.cat([levels, levels]), [prompt, negative], rows=rows)
    with torch.no_grad():
        offsets = model.denoiser.tracker.offsets(latents, levels, prompt[None])
        expected = model.denoiser(latents, levels, negative[None], offsets, share_clean=True)
    torch.testing.assert_close(together[1:], expected)
    alone = backbone.predict(latents, levels, [negative], rows=rows[1:])
    torch.testing.assert_close(alone, together[1:])


def test_stage_four_starts_from_a_model_without_a_tracker_and_trains_it(tmp_path: Path) -> None:
    torch.manual_seed(3)
    earlier = ShapesModel(ShapesModelConfig(widths=(8, 16), motion=True), token_ids=[1, 2, 3])
    save(earlier, {"model": earlier.config.model_dump(mode="json")}, tmp_path / "stage3")
    tracking = ShapesModel(TINY, token_ids=[1, 2, 3])
    _start_from(tracking, str(tmp_path / "stage3"))
    assert torch.equal(tracking.denoiser.conv_in.weight, earlier.denoiser.conv_in.weight)

    config = TrainConfig(steps=3, batch=2, warmup=1, model=ShapesModelConfig(motion=True, tracking=True))
    model, metadata = train(config, "cpu", log_every=0)
    torch.manual_seed(config.seed)  # as train() does before building its model
    untrained = ShapesModel(config.model).denoiser.tracker
    assert metadata["model"]["tracking"] and metadata["steps_done"] == 3
    save(model, metadata, tmp_path / "stage4")
    loaded = ShapesBackbone(weights=str(tmp_path / "stage4"))
    assert loaded.model.denoiser.tracker is not None
    assert not torch.equal(loaded.model.denoiser.tracker.head[-1].weight, untrained.head[-1].weight)
    output = loaded.predict(torch.randn(2, 3, 8, 32, 32), torch.full((2, 8), 700.0), [loaded.encode_prompt("a red circle moving up")] * 2)
    assert output.shape == (2, 3, 8, 32, 32) and bool(torch.isfinite(output).all())


def test_in_the_still_frame_every_frame_takes_the_cleanest_frames_estimate() -> None:
    denoiser = ShapesModel(TINY, token_ids=[1, 2, 3]).denoiser
    clip, v = torch.randn(2, 3, 4, 32, 32), torch.randn(2, 3, 4, 32, 32)
    levels = torch.tensor([[400.0, 20.0, 750.0, 990.0], [800.0, 800.0, 800.0, 800.0]])
    signal = denoiser.alphas_cumprod[levels.long()][:, None, :, None, None]
    own = signal.sqrt() * clip - (1 - signal).sqrt() * v
    shared = signal.sqrt() * clip - (1 - signal).sqrt() * denoiser._lead_clean_frame(clip, v, levels)
    # The cleanest frame (the newest when all are equally noisy); snapped to the palette when
    # its level is below SNAP_BELOW, kept as it is above.
    assert levels[0, 1] < SNAP_BELOW < levels[1, 3]
    expected = [snap_to_palette(own[0, :, 1][None])[0], own[1, :, 3]]
    for row in range(2):
        torch.testing.assert_close(shared[row], expected[row][:, None].expand_as(shared[row]), atol=2e-4, rtol=1e-4)


def test_snapping_gives_each_pixel_the_nearest_colour_of_the_palette() -> None:
    palette = palette_tensor(tuple(PALETTE))
    drawn = palette[torch.randint(0, len(palette), (3, 16, 16), generator=torch.Generator().manual_seed(0))].permute(0, 3, 1, 2)
    # Nearest palette colours are 0.80 apart: any error under 0.4 / sqrt(3) per channel is undone.
    blurred = drawn + 0.22 * (2 * torch.rand(drawn.shape, generator=torch.Generator().manual_seed(1)) - 1)
    assert torch.equal(snap_to_palette(blurred), drawn)
    assert torch.equal(snap_to_palette(drawn), drawn)


def test_stage_five_starts_a_new_tracker_and_keeps_everything_else(tmp_path: Path) -> None:
    torch.manual_seed(4)
    stage4 = ShapesModel(TINY, token_ids=[1, 2, 3])
    for parameter in stage4.denoiser.tracker.parameters():
        torch.nn.init.normal_(parameter)
    save(stage4, {"model": TINY.model_dump(mode="json")}, tmp_path / "stage4")
    fresh = ShapesModel(TINY, token_ids=[1, 2, 3])
    own_tracker = {key: value.clone() for key, value in fresh.denoiser.tracker.state_dict().items()}
    _start_from(fresh, str(tmp_path / "stage4"), fresh_tracker=True)
    assert all(torch.equal(value, own_tracker[key]) for key, value in fresh.denoiser.tracker.state_dict().items())
    assert torch.equal(fresh.denoiser.conv_in.weight, stage4.denoiser.conv_in.weight)
    _start_from(fresh, str(tmp_path / "stage4"))  # without it, the folder's tracker is loaded
    assert torch.equal(fresh.denoiser.tracker.head[-1].weight, stage4.denoiser.tracker.head[-1].weight)


@pytest.mark.parametrize("caption", [Caption("yellow", "square", "bouncing", "blue"), Caption("white", "circle", "moving up", "gray")])
def test_the_tracker_sees_where_the_shape_stands_wherever_it_is_and_whatever_its_colours(caption: Caption) -> None:
    """The place features peak at the centre of a symmetric shape (a triangle's peak sits a fixed
    distance below its anchor), anywhere on the torus, edges included."""
    tracker = MotionTracker(TINY)
    clips = clips_for(caption, batch=8, frames=6, generator=torch.Generator().manual_seed(2))
    places = tracker.place_features(render(clips))  # 'b f (w + h)'
    assert torch.equal(places[..., :32].argmax(dim=-1), clips.positions[..., 0])
    assert torch.equal(places[..., 32:].argmax(dim=-1), clips.positions[..., 1])


def test_bouncing_clips_can_be_drawn_more_often_for_the_tracker() -> None:
    bouncing = MOTIONS.index("bouncing")
    plain = random_clips(4000, 2, torch.Generator().manual_seed(0))
    weighted = random_clips(4000, 2, torch.Generator().manual_seed(0), bouncing_weight=4.0)
    assert abs(float((plain.motion == bouncing).float().mean()) - 1 / 5) < 0.03
    assert abs(float((weighted.motion == bouncing).float().mean()) - 4 / 8) < 0.03


def test_tracker_noise_without_tracker_only_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="add --tracker-only"):
        TrainConfig(tracker_noise=0.3)
    assert TrainConfig(tracker_noise=0.3, tracker_only=True, model=TINY).tracker_noise == 0.3

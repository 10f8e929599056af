"""Open-Sora Plan v1.1.0's LatteT2V through diffusers' LatteTransformer3DModel: the released folder
layout loads strictly, the config translates, outputs equal the reference's (committed in
``data/latte_tiny_expected.safetensors``, see ``data/make_latte_reference.py``) for both temporal
interpolation scales, and the per-frame adaLN shim of ``fifo_diffusers.latte`` works on the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from fifo_core.errors import ConfigError  # noqa: E402
from fifo_core.testing import assert_matches_recorded  # noqa: E402
from fifo_opensora.transformer import (  # noqa: E402
    DROPPED_FIELDS,
    FIXED_FIELDS,
    REFERENCE_DEFAULTS,
    SHARED_FIELDS,
    UNUSED_BUFFER,
    VIDEO_LENGTHS,
    diffusers_latte_config,
    load_transformer,
    released_config,
    temporal_interpolation_scale,
    temporal_position_table,
    tiny_released_config,
)

DATA = Path(__file__).parent / "data"
TINY = DATA / "latte_tiny"
CASES = {"short": 17, "long": 56}  # 65x512x512-like (scale 1) and 221x512x512-like (scale 3)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return safetensors_torch.load_file(DATA / "latte_tiny_expected.safetensors")


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {case: load_transformer(TINY, video_length=frames) for case, frames in CASES.items()}


def _call(model, expected: dict[str, torch.Tensor], case: str) -> torch.Tensor:
    """As the reference pipeline calls it: one timestep per sample, states cut to the prompt, no mask."""
    with torch.no_grad():
        return model(
            expected[f"{case}.latents"], expected[f"{case}.timesteps"],
            encoder_hidden_states=expected[f"{case}.encoder_hidden_states"], return_dict=False,
        )[0]


def _copy_tiny(target: Path, *, drop: tuple[str, ...] = (), **config_changes) -> Path:
    """The tiny folder at ``target`` with config fields changed or dropped."""
    target.mkdir(parents=True)
    shutil.copy(TINY / "diffusion_pytorch_model.safetensors", target)
    config = {**json.loads((TINY / "config.json").read_text()), **config_changes}
    (target / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in drop}))
    return target


# -- loading -------------------------------------------------------------------------------------


def test_the_committed_folder_is_in_the_released_schema() -> None:
    written = json.loads((TINY / "config.json").read_text())
    assert written == tiny_released_config()
    assert set(written) == set(released_config("65x512x512")) and written["sample_size"] == [8, 8]


def test_tiny_released_folder_loads_every_tensor_but_the_unused_buffer(models) -> None:
    model, stored = models["short"], safetensors_torch.load_file(TINY / "diffusion_pytorch_model.safetensors")
    assert UNUSED_BUFFER in stored
    assert set(stored) - set(model.state_dict()) == {UNUSED_BUFFER}
    assert all(torch.equal(value, stored[key]) for key, value in model.state_dict().items())
    assert (model.config.sample_size, model.config.video_length, model.training) == (8, 17, False)


def test_video_length_comes_from_the_folder_name_then_the_config(tmp_path: Path) -> None:
    assert load_transformer(TINY).config.video_length == 17  # from config.json
    named = _copy_tiny(tmp_path / "221x512x512", drop=("video_length",))
    assert load_transformer(named).config.video_length == 56
    with pytest.raises(ConfigError, match="pass video_length"):
        load_transformer(_copy_tiny(tmp_path / "elsewhere", drop=("video_length",)))
    with pytest.raises(ConfigError, match="pass video_length explicitly"):
        load_transformer(_copy_tiny(tmp_path / "65x512x512", video_length=56))


def test_weights_that_do_not_fit_name_the_keys_and_the_expected_layout(tmp_path: Path) -> None:
    folder = _copy_tiny(tmp_path / "renamed")
    state = safetensors_torch.load_file(folder / "diffusion_pytorch_model.safetensors")
    state["adaln_single.linear.weight_renamed"] = state.pop("adaln_single.linear.weight")
    safetensors_torch.save_file(state, folder / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ConfigError, match=r"1 missing keys \['adaln_single.linear.weight'\]") as error:
        load_transformer(folder)
    assert "weight_renamed" in str(error.value) and "65x512x512" in str(error.value)
    assert error.value.field == "backbone_options"


def test_a_config_of_other_weights_is_refused_with_the_shapes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="other shapes"):
        load_transformer(_copy_tiny(tmp_path / "wider", attention_head_dim=16, cross_attention_dim=32))


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no config.json"):
        load_transformer(tmp_path)
    (tmp_path / "config.json").write_text((TINY / "config.json").read_text())
    with pytest.raises(ConfigError, match="diffusion_pytorch_model.safetensors"):
        load_transformer(tmp_path)


# -- config translation --------------------------------------------------------------------------


def test_released_config_translates_to_diffusers_kwargs() -> None:
    config = diffusers_latte_config(released_config("221x512x512"), video_length=56)
    assert (config["sample_size"], config["video_length"], config["out_channels"]) == (64, 56, 8)
    assert "attention_mode" not in config and "interpolation_scale_1d" not in config


def test_every_reference_field_is_passed_on_checked_or_deliberately_dropped() -> None:
    handled = [*SHARED_FIELDS, *FIXED_FIELDS, "sample_size", "video_length", *DROPPED_FIELDS]
    assert sorted(set(handled)) == sorted(REFERENCE_DEFAULTS) == sorted(k for k in released_config("65x512x512") if k[0] != "_")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_rope": True}, "rotary"),
        ({"compress_kv_factor": 2}, "compression"),
        ({"norm_type": "ada_norm"}, "adaLN-single"),
        ({"sample_size": [64, 32]}, "square"),
        ({"num_frames": 65}, "does not register"),
        ({"_class_name": "LatteTransformer3DModel"}, "latte-1"),
    ],
)
def test_configs_diffusers_cannot_express_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        diffusers_latte_config({**released_config("65x512x512"), **change}, video_length=17)


def test_temporal_interpolation_scale_follows_the_reference_rule() -> None:
    lengths = [1, 5, 16, 17, 31, 32, 33, 48, 56, 65]
    assert [temporal_interpolation_scale(n) for n in lengths] == [1, 1, 1, 1, 1, 2, 2, 3, 3, 4]
    assert {variant: temporal_interpolation_scale(n) for variant, n in VIDEO_LENGTHS.items()} == {"65x512x512": 1, "221x512x512": 3}
    with pytest.raises(ConfigError, match="positive"):
        temporal_interpolation_scale(0)


def test_full_size_model_has_the_released_parameter_count() -> None:
    from accelerate import init_empty_weights
    from diffusers import LatteTransformer3DModel

    with init_empty_weights():
        model = LatteTransformer3DModel(**diffusers_latte_config(released_config("65x512x512"), video_length=17))
    assert sum(p.numel() for p in model.parameters()) == 1_057_246_880


# -- numerical equivalence with the reference ----------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_output_equals_the_reference_latte_t2v(models, expected, case: str) -> None:
    model = models[case]
    assert torch.equal(model.temp_pos_embed, expected[f"{case}.temp_pos_embed"])
    output = _call(model, expected, case)
    assert output.shape[1] == 2 * expected[f"{case}.latents"].shape[1]  # epsilon and the learned variance
    assert_matches_recorded(output, expected[f"{case}.output"])


def test_the_long_case_depends_on_the_interpolation_scale(models, expected) -> None:
    """Guards the test above: diffusers' own table (scale 1) is far from the reference at 56 frames."""
    model = load_transformer(TINY, video_length=56)
    model.temp_pos_embed = temporal_position_table(16, 56, 1.0)
    assert (_call(model, expected, "long") - expected["long.output"]).abs().max() > 0.1


# -- the per-frame adaLN shim --------------------------------------------------------------------


@pytest.fixture
def shimmed():
    from fifo_diffusers.latte import PerFrameModulation

    model = load_transformer(TINY)
    shim = PerFrameModulation(model)
    yield model, shim
    shim.remove()


def test_shim_with_equal_frame_timesteps_is_the_plain_model_bit_for_bit(shimmed, expected) -> None:
    model, shim = shimmed
    plain = _call(model, expected, "short")
    per_frame = expected["short.timesteps"].float()[:, None].expand(-1, CASES["short"])
    with shim.active(per_frame):
        hooked = _call(model, expected, "short")
    assert torch.equal(hooked, plain)


def test_shim_with_distinct_frame_timesteps_changes_every_frame(shimmed, expected) -> None:
    model, shim = shimmed
    frames = CASES["short"]
    shared = torch.full((2, frames), 500.0)
    ramp = torch.stack([500.0 + 25.0 * torch.arange(frames), torch.full((frames,), 500.0)])
    with shim.active(shared):
        same = _call(model, expected, "short")
    with shim.active(ramp):
        differ = _call(model, expected, "short")
    for k in range(frames):  # frame 0 keeps t=500 but attends to frames that do not
        assert not torch.allclose(same[0, :, k], differ[0, :, k], atol=1e-4), k
    assert torch.equal(same[1], differ[1])  # rows stay independent

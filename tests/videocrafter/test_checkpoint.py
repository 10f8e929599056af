"""Reading original checkpoints: wrapper, safetensors, safe unpickling, strict keys, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fifo_core.api import load_backbone
from fifo_videocrafter.checkpoint import (
    CheckpointError,
    check_state_dict,
    expected_shapes,
    load_modules,
    read_checkpoint,
)
from fifo_videocrafter.config import ARCHITECTURES, TINY_VIDEOCRAFTER2, VIDEOCRAFTER1_512, VIDEOCRAFTER2

from .seeded import tiny_checkpoint_state


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return tiny_checkpoint_state(TINY_VIDEOCRAFTER2, seed=0)


def test_videocrafter2_has_the_2039_keys_of_its_model_ckpt() -> None:
    keys = expected_shapes(VIDEOCRAFTER2)
    assert len(keys) == 2039
    assert sum(key.startswith("model.diffusion_model.") for key in keys) == 1484
    assert sum(key.startswith("first_stage_model.") for key in keys) == 248
    assert sum(key.startswith("cond_stage_model.model.") for key in keys) == 294
    assert sum("." not in key for key in keys) == 13
    assert any("temopral_conv" in key for key in keys)
    assert keys["scale_arr"] == (1400,)  # stored without fix_scale_bug: T + mid_step entries


def test_videocrafter1_layouts_differ_from_videocrafter2() -> None:
    vc1 = set(expected_shapes(ARCHITECTURES["videocrafter1"]))
    vc1_1024 = set(expected_shapes(ARCHITECTURES["videocrafter1-1024"]))
    assert "scale_arr" not in vc1 and "scale_arr" in vc1_1024
    assert not any("temopral_conv" in key for key in vc1 | vc1_1024)
    assert any("relative_position_k" in key for key in vc1)
    assert any(key.startswith("model.diffusion_model.fps_embedding") for key in vc1_1024 - vc1)


@pytest.mark.parametrize("wrap", [True, False])
def test_pickle_with_or_without_state_dict_wrapper(state, tmp_path: Path, wrap: bool) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "epoch": 3} if wrap else state, path)
    read = read_checkpoint(path)
    assert set(read) == set(state) and all(torch.equal(read[key], state[key]) for key in state)


def test_safetensors_and_a_folder_holding_the_file(state, tmp_path: Path) -> None:
    save_file(state, tmp_path / "model.safetensors")
    for path in (tmp_path / "model.safetensors", tmp_path):
        assert set(read_checkpoint(path)) == set(state)


class _Payload:
    """Anything that is not a tensor, dict or number: ``weights_only`` refuses to build it."""


def test_pickled_python_objects_are_refused_and_a_safetensors_file_asked_for(state, tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "callbacks": _Payload()}, path)
    with pytest.raises(CheckpointError, match="not loaded for safety.*safetensors"):
        read_checkpoint(path)


def test_missing_file_says_where_to_download(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="huggingface.co/VideoCrafter/VideoCrafter2"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_missing_unexpected_and_misshapen_keys_are_all_listed(state) -> None:
    broken = dict(state)
    del broken["model.diffusion_model.out.2.weight"]
    broken["model.diffusion_model.extra.weight"] = torch.zeros(1)
    broken["first_stage_model.post_quant_conv.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as error:
        load_modules(broken, TINY_VIDEOCRAFTER2, "tiny")
    message = str(error.value)
    assert "Missing 1: model.diffusion_model.out.2.weight" in message
    assert "Unexpected 1: model.diffusion_model.extra.weight" in message
    assert "first_stage_model.post_quant_conv.bias (5,) (expected (4,))" in message


def test_a_videocrafter1_checkpoint_given_to_videocrafter2_names_the_right_backbone() -> None:
    vc1_keys = {key: torch.zeros(0) for key in expected_shapes(VIDEOCRAFTER1_512)}
    with pytest.raises(CheckpointError, match="use --backbone videocrafter1"):
        check_state_dict(vc1_keys, VIDEOCRAFTER2, "videocrafter2")


def test_a_different_noise_schedule_is_refused(state) -> None:
    changed = dict(state)
    changed["alphas_cumprod"] = state["alphas_cumprod"] * 0.9
    with pytest.raises(CheckpointError, match="noise schedule"):
        load_modules(changed, TINY_VIDEOCRAFTER2, "tiny")


def test_loaded_modules_hold_the_checkpoint_tensors(state) -> None:
    modules = load_modules(state, TINY_VIDEOCRAFTER2, "tiny")
    weight = modules.unet.input_blocks[1][0].temopral_conv.conv4[3].weight
    assert torch.equal(weight, state["model.diffusion_model.input_blocks.1.0.temopral_conv.conv4.3.weight"])
    assert torch.equal(modules.text.token_embedding.weight, state["cond_stage_model.model.token_embedding.weight"])
    assert not any(parameter.requires_grad for parameter in modules.unet.parameters())


def test_backbone_error_points_at_the_checkpoint_option(tmp_path: Path) -> None:
    from fifo_core.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        load_backbone("videocrafter2", {"checkpoint": str(tmp_path / "missing.ckpt"), "device": "cpu"})
    assert error.value.field == "backbone_options.checkpoint"

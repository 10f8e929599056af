"""The native CausalVAE against Open-Sora Plan v1.1.0's own code, on a tiny seeded model.

``data/causal_vae_tiny/`` is laid out like the released ``vae/`` folder (config.json plus
diffusion_pytorch_model.safetensors with ``loss.*`` training keys); the expected outputs come from
the reference implementation (``data/make_causal_vae_reference.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from fifo_core.errors import ConfigError
from fifo_core.testing import assert_matches_recorded
from fifo_opensora.causal_vae import CausalVAE, parameter_count, released_config, tiny_config
from fifo_opensora.causal_vae_blocks import LAYERS

DATA = Path(__file__).parent / "data"
FOLDER = DATA / "causal_vae_tiny"


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "causal_vae_tiny_expected.safetensors"))


@pytest.fixture(scope="module")
def vae() -> CausalVAE:
    return CausalVAE.from_pretrained(FOLDER)


def test_tiny_folder_is_the_tiny_config_and_loads_skipping_loss_keys(vae: CausalVAE) -> None:
    assert json.loads((FOLDER / "config.json").read_text()) == tiny_config()
    stored = load_file(str(FOLDER / "diffusion_pytorch_model.safetensors"))
    assert any(k.startswith("loss.") for k in stored)
    assert set(vae.state_dict()) == {k for k in stored if not k.startswith("loss.")}
    assert (vae.temporal_compression, vae.spatial_compression, vae.latent_channels) == (4, 8, 4)
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())


def test_a_missing_key_names_the_key_and_the_expected_layout(tmp_path: Path) -> None:
    shutil.copy(FOLDER / "config.json", tmp_path / "config.json")
    stored = load_file(str(FOLDER / "diffusion_pytorch_model.safetensors"))
    del stored["decoder.mid.attn_1.q.conv.weight"]
    save_file(stored, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(ConfigError, match=r"decoder\.mid\.attn_1\.q\.conv\.weight") as error:
        CausalVAE.from_pretrained(tmp_path)
    assert error.value.field == "backbone_options"
    assert "Open-Sora-Plan-v1.1.0" in str(error.value) and "config.json" in str(error.value)


def test_a_folder_without_weights_says_what_it_expects(tmp_path: Path) -> None:
    shutil.copy(FOLDER / "config.json", tmp_path / "config.json")
    with pytest.raises(ConfigError, match="diffusion_pytorch_model.safetensors"):
        CausalVAE.from_pretrained(tmp_path)


def test_an_unknown_layer_class_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="TimeUpsampleRes2x"):
        CausalVAE.from_config({**tiny_config(), "decoder_temporal_upsample": ["", "", "Bogus", "TimeUpsample2x"]})


@pytest.mark.parametrize("case", ["T9", "T1"])
def test_encode_equals_the_reference_posterior_mean(vae: CausalVAE, expected: dict, case: str) -> None:
    with torch.no_grad():
        latent = vae.encode(expected[f"video.{case}"])
    assert_matches_recorded(latent, expected[f"encode.{case}"])


@pytest.mark.parametrize("case", ["t3", "t1"])
def test_decode_equals_the_reference(vae: CausalVAE, expected: dict, case: str) -> None:
    with torch.no_grad():
        video = vae.decode(expected[f"latent.{case}"])
    assert_matches_recorded(video, expected[f"decode.{case}"])


@pytest.mark.parametrize(
    ("name", "family", "build"),
    [
        ("CausalConv3d", "conv", (3, 32)),
        ("SpatialDownsample2x", "spatial_downsample", (32, 32)),
        ("TimeDownsample2x", "temporal_downsample", (32, 32)),
        ("TimeUpsample2x", "temporal_upsample", (32, 32)),
        ("AttnBlock3D", "attention", (32,)),
        ("ResnetBlock2D", "resnet", (32, 64)),
    ],
)
def test_layers_outside_the_released_config_equal_the_reference(expected: dict, name: str, family: str, build: tuple) -> None:
    layer = LAYERS[family][name](*build)
    prefix = f"layer.{name}.weight."
    layer.load_state_dict({k[len(prefix):]: v.float() for k, v in expected.items() if k.startswith(prefix)}, strict=True)
    with torch.no_grad():
        output = layer(expected[f"layer.{name}.input"])
    assert_matches_recorded(output, expected[f"layer.{name}.output"])


@pytest.mark.parametrize("latent_frames", [1, 2, 4])
def test_shapes_follow_one_plus_four_k(vae: CausalVAE, latent_frames: int) -> None:
    frames = 1 + 4 * (latent_frames - 1)
    with torch.no_grad():
        latent = vae.encode(torch.zeros(1, 3, frames, 16, 8))
        video = vae.decode(torch.zeros(2, 4, latent_frames, 3, 2))
    assert latent.shape == (1, 4, latent_frames, 2, 1)
    assert video.shape == (2, 3, frames, 24, 16)


def test_encode_refuses_a_frame_count_that_is_not_one_plus_four_k(vae: CausalVAE) -> None:
    with pytest.raises(ValueError, match=r"T = 1 \+ 4k"):
        vae.encode(torch.zeros(1, 3, 8, 16, 16))


def test_released_config_has_the_tiny_keys_at_full_width() -> None:
    with torch.device("meta"):
        full, tiny = CausalVAE(released_config()), CausalVAE(tiny_config())
    full_keys, tiny_keys = set(full.state_dict()), set(tiny.state_dict())
    # Full size has two blocks per encoder level (three per decoder level) and channel changes.
    assert tiny_keys <= full_keys
    extra = {k for k in full_keys - tiny_keys if ".block.1." not in k and ".block.2." not in k}
    assert extra and all(".nin_shortcut." in k for k in extra)
    assert parameter_count(full) == 246_859_499
    assert (full.temporal_compression, full.spatial_compression, full.latent_channels) == (4, 8, 4)


@pytest.mark.slow
def test_full_size_random_weights_load_from_a_released_layout_folder_and_decode(tmp_path: Path) -> None:
    """About 250 M parameters: 0.5 GB on disk (float16), a few GB of memory, about 5 minutes on 2 CPU cores."""
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in CausalVAE(released_config()).state_dict().items()}
    stored = {k: (torch.randn(s, generator=generator) * (s[1:].numel() ** -0.5 if len(s) > 1 else 0.1)).half()
              for k, s in shapes.items()}
    stored["loss.logvar"] = torch.zeros(())
    save_file(stored, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(released_config()))
    vae = CausalVAE.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert parameter_count(vae) == 246_859_499
    with torch.no_grad():
        video = vae.decode(torch.randn(1, 4, 2, 4, 4, dtype=torch.bfloat16))
        latent = vae.encode(video.clamp(-1, 1))
    assert video.shape == (1, 3, 5, 32, 32) and latent.shape == (1, 4, 2, 4, 4)
    assert torch.isfinite(video).all() and torch.isfinite(latent).all()

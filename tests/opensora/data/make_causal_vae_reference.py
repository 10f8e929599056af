"""Rebuild the CausalVAE test data with Open-Sora Plan's own code (not run by the tests).

    .venv/bin/python tests/opensora/data/make_causal_vae_reference.py /path/to/Open-Sora-Plan

The path is a checkout (or ``git archive``) of PKU-YuanGroup/Open-Sora-Plan at tag v1.1.0; only
``opensora/models/ae/videobase`` is imported, and the training-only imports it would drag in are
bypassed (bare parent packages, a stand-in ``pytorch_lightning`` when it is not installed, and a
stand-in loss whose two parameters become the ``loss.*`` keys the loader must skip).

Writes, next to this script:

* ``causal_vae_tiny/config.json`` -- ``tiny_config()`` in the released schema;
* ``causal_vae_tiny/diffusion_pytorch_model.safetensors`` -- the reference model's state dict
  with every parameter seeded (float16 to keep the file small) plus the ``loss.*`` keys;
* ``causal_vae_tiny_expected.safetensors`` -- inputs and the reference's outputs in float32
  (layer weights in float16):
  ``encode.<case>`` is the posterior mean, ``decode.<case>`` the decoded video; ``layer.<Name>.*``
  checks the layer classes the released config does not use, one by one.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from fifo_opensora.causal_vae import tiny_config

HERE = Path(__file__).resolve().parent
FOLDER = HERE / "causal_vae_tiny"
EXPECTED = HERE / "causal_vae_tiny_expected.safetensors"
STUB_LOSS = "fifo_reference_stub_loss.StubLoss"


class StubLoss(nn.Module):
    """Stands in for LPIPSWithDiscriminator3D (which downloads VGG weights); keys like the real one's."""

    def __init__(self, **_: object) -> None:
        super().__init__()
        self.logvar = nn.Parameter(torch.zeros(()))
        self.discriminator = nn.Module()
        self.discriminator.main = nn.Sequential(nn.Conv3d(3, 4, 1))


def import_reference(root: Path) -> types.ModuleType:
    for name in ("opensora", "opensora.models", "opensora.models.ae", "opensora.models.ae.videobase"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = package
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:
        lightning = types.ModuleType("pytorch_lightning")
        lightning.LightningModule = type("LightningModule", (nn.Module,), {})
        sys.modules["pytorch_lightning"] = lightning
    stub = types.ModuleType("fifo_reference_stub_loss")
    stub.StubLoss = StubLoss
    sys.modules["fifo_reference_stub_loss"] = stub
    import opensora.models.ae.videobase.causal_vae.modeling_causalvae as modeling

    return modeling


def seeded(state: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Every tensor random: kernels ~ N(0, 1/fan_in), norm weights 1 + 0.2 u, biases and mix factors 0.3 n."""
    out = {}
    for key, value in state.items():
        if value.ndim >= 2:
            fan_in = value[0].numel()
            tensor = torch.randn(value.shape, generator=generator) / fan_in**0.5
        elif key.endswith("weight"):  # every 1-D weight is a GroupNorm's
            tensor = 1 + 0.2 * (2 * torch.rand(value.shape, generator=generator) - 1)
        else:
            tensor = 0.3 * torch.randn(value.shape, generator=generator)
        out[key] = tensor.half()  # what is committed; the reference runs on the same values in float32
    return out


def main(root: Path) -> None:
    modeling = import_reference(root)
    from opensora.models.ae.videobase import modules

    generator = torch.Generator().manual_seed(20240527)
    config = tiny_config()
    FOLDER.mkdir(exist_ok=True)
    (FOLDER / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    model = modeling.CausalVAEModel.from_config({**config, "loss_type": STUB_LOSS}).eval()
    weights = seeded(model.state_dict(), generator)
    assert any(k.startswith("loss.") for k in weights)
    save_file(weights, str(FOLDER / "diffusion_pytorch_model.safetensors"))
    model.load_state_dict({k: v.float() for k, v in weights.items()})

    expected: dict[str, torch.Tensor] = {}
    videos = {
        "T9": 2 * torch.rand(1, 3, 9, 16, 24, generator=generator) - 1,
        "T1": 2 * torch.rand(2, 3, 1, 16, 24, generator=generator) - 1,
    }
    latents = {
        "t3": torch.randn(1, 4, 3, 2, 3, generator=generator),
        "t1": torch.randn(2, 4, 1, 2, 3, generator=generator),
    }
    with torch.no_grad():
        for case, video in videos.items():
            expected[f"video.{case}"] = video
            expected[f"encode.{case}"] = model.encode(video).mean
        for case, latent in latents.items():
            expected[f"latent.{case}"] = latent
            expected[f"decode.{case}"] = model.decode(latent)

        layers = {
            "CausalConv3d": (modules.CausalConv3d(3, 32, kernel_size=3, padding=1), (1, 3, 5, 4, 6)),
            "SpatialDownsample2x": (modules.SpatialDownsample2x(32, 32), (1, 32, 3, 4, 6)),
            "TimeDownsample2x": (modules.TimeDownsample2x(32, 32), (2, 32, 5, 2, 3)),
            "TimeUpsample2x": (modules.TimeUpsample2x(32, 32), (2, 32, 3, 2, 3)),
            "AttnBlock3D": (modules.AttnBlock3D(32), (2, 32, 3, 2, 3)),
            "ResnetBlock2D": (modules.ResnetBlock2D(in_channels=32, out_channels=64, dropout=0.0), (1, 32, 2, 4, 6)),
        }
        for name, (layer, shape) in layers.items():
            layer_weights = seeded(layer.state_dict(), generator)
            layer.load_state_dict({k: v.float() for k, v in layer_weights.items()})
            x = torch.randn(shape, generator=generator)
            expected.update({f"layer.{name}.weight.{k}": v for k, v in layer_weights.items()})
            expected[f"layer.{name}.input"] = x
            expected[f"layer.{name}.output"] = layer.eval()(x)

    save_file({k: v.contiguous() for k, v in expected.items()}, str(EXPECTED))
    print(f"wrote {FOLDER} ({len(weights)} keys) and {EXPECTED} ({len(expected)} tensors)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())

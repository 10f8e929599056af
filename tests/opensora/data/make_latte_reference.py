"""Rebuild ``latte_tiny/`` and ``latte_tiny_expected.safetensors`` with the reference ``LatteT2V``.

Not run by the tests. It needs a checkout of PKU-YuanGroup/Open-Sora-Plan at tag v1.1.0 and the
diffusers the reference pins (0.27.2; newer releases removed the LoRA classes it imports):

    pip install --target /tmp/ref_latte_deps --no-deps diffusers==0.27.2 huggingface_hub==0.23.4
    PYTHONPATH=/tmp/ref_latte_deps python tests/opensora/data/make_latte_reference.py /path/to/Open-Sora-Plan

Steps:

1. build ``LatteT2V`` from :func:`fifo_opensora.transformer.tiny_released_config`, give every
   parameter and the ``caption_projection.y_embedding`` buffer seeded random values, and save it
   with the reference's own ``save_pretrained`` (so ``config.json`` is in the released schema);
2. reload it as ``sample_t2v.py`` does (``LatteT2V.from_pretrained``) once per case, with the
   attention kernel set to plain PyTorch (``attention_mode='math'``) for the CPU;
3. call it as ``VideoGenPipeline`` does: latents ``'b c f h w'``, one integer timestep per sample,
   T5-like states cut to the prompt's tokens (``mask_feature=True``), no attention masks,
   ``added_cond_kwargs`` of ``None`` sizes; store inputs, outputs and the temporal table.

Cases: ``short`` (17 latent frames, interpolation scale 1, like 65x512x512; the unconditional and
the conditional row of a guided step) and ``long`` (56 frames, scale 3, like 221x512x512).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CASES = {  # name: (video_length, batch, prompt tokens, timesteps)
    "short": (17, 2, 7, [999, 421]),
    "long": (56, 1, 5, [37]),
}
LATENT_SIDE = 8  # the tiny config's sample_size
WEIGHT_STD = 0.2


def import_reference(checkout: Path):
    """``LatteT2V`` from the checkout without its package ``__init__`` files (they import the VAEs,
    the trainers and their dependencies)."""
    sys.modules["transformers"] = None  # diffusers 0.27 would import it for LoRA helpers only
    import diffusers

    if diffusers.__version__ != "0.27.2":
        sys.exit(f"the reference needs diffusers 0.27.2 first on PYTHONPATH, found {diffusers.__version__} ({diffusers.__file__})")
    packages = ("opensora", "opensora.models", "opensora.models.diffusion", "opensora.models.diffusion.latte", "opensora.models.diffusion.utils")
    for package in packages:
        module = types.ModuleType(package)
        module.__path__ = [str(checkout / package.replace(".", "/"))]
        sys.modules[package] = module
    from opensora.models.diffusion.latte.modeling_latte import LatteT2V

    return LatteT2V


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="Open-Sora-Plan checkout at tag v1.1.0")
    args = parser.parse_args()
    LatteT2V = import_reference(args.checkout.resolve())
    sys.path.insert(0, str(REPO / "adapters"))
    sys.path.insert(0, str(REPO))
    from fifo_opensora.transformer import tiny_released_config

    from safetensors.torch import save_file

    released = tiny_released_config()
    torch.manual_seed(0)
    model = LatteT2V(**{key: value for key, value in released.items() if not key.startswith("_")})
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():  # every parameter and the persistent y_embedding
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * WEIGHT_STD)
    folder = HERE / "latte_tiny"
    model.save_pretrained(folder, safe_serialization=True)
    written = json.loads((folder / "config.json").read_text())
    assert written == {**released, "_diffusers_version": written["_diffusers_version"]}, written

    tensors: dict[str, torch.Tensor] = {}
    for case, (frames, batch, tokens, timesteps) in CASES.items():
        reference = LatteT2V.from_pretrained(folder, video_length=frames, attention_mode="math").eval()
        inputs = torch.Generator().manual_seed(frames)
        latents = torch.randn(batch, released["in_channels"], frames, LATENT_SIDE, LATENT_SIDE, generator=inputs)
        states = torch.randn(batch, tokens, released["caption_channels"], generator=inputs) * 0.5
        timestep = torch.tensor(timesteps, dtype=torch.int64)
        with torch.no_grad():
            output = reference(
                latents, encoder_hidden_states=states, timestep=timestep,
                added_cond_kwargs={"resolution": None, "aspect_ratio": None},
                enable_temporal_attentions=True, return_dict=False,
            )[0]
        tensors |= {
            f"{case}.latents": latents, f"{case}.timesteps": timestep, f"{case}.encoder_hidden_states": states,
            f"{case}.output": output.contiguous(), f"{case}.temp_pos_embed": reference.temp_pos_embed.contiguous(),
        }
        print(case, tuple(output.shape), float(output.abs().mean()))
    save_file(tensors, HERE / "latte_tiny_expected.safetensors", metadata={
        "reference": "PKU-YuanGroup/Open-Sora-Plan v1.1.0 opensora/models/diffusion/latte/modeling_latte.py LatteT2V",
        **{f"{case}.video_length": str(spec[0]) for case, spec in CASES.items()},
    })


if __name__ == "__main__":
    main()

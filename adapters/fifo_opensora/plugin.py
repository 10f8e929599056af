"""Registers Open-Sora Plan v1.1 (65x512x512 and 221x512x512) through the ``fifo_diffusion`` entry point.

Importing this module is cheap: diffusers, transformers and the models load only when a backbone
is created.
"""

from __future__ import annotations

from typing import Any

from fifo_core.hookspecs import hookimpl
from fifo_opensora.defaults import OPENSORA_65_DEFAULTS, OPENSORA_221_DEFAULTS, OpenSoraPlan221Options, OpenSoraPlanOptions


def _65x512(**options: Any):
    from fifo_opensora.backbone import OpenSoraPlanBackbone

    return OpenSoraPlanBackbone.load(OPENSORA_65_DEFAULTS, **{"variant": "65x512x512", **options})


def _221x512(**options: Any):
    from fifo_opensora.backbone import OpenSoraPlanBackbone

    return OpenSoraPlanBackbone.load(OPENSORA_221_DEFAULTS, **{"variant": "221x512x512", **options})


@hookimpl
def register_backbones(register):
    register(
        "opensora-plan-v1.1",
        _65x512,
        defaults=OPENSORA_65_DEFAULTS,
        options=OpenSoraPlanOptions,
        description="Open-Sora Plan v1.1 65x512x512 (the paper's DiT: Latte through diffusers, native CausalVAE, T5-XXL); "
        "--model FOLDER in the released layout; window f must be 17; 4 frames per latent (the first gives 1).",
        aliases=("opensora-plan-v1.1-65x512x512", "opensora-plan"),
    )
    register(
        "opensora-plan-v1.1-221x512x512",
        _221x512,
        defaults=OPENSORA_221_DEFAULTS,
        options=OpenSoraPlan221Options,
        description="Open-Sora Plan v1.1 221x512x512; window f must be 56; 4 frames per latent (the first gives 1).",
    )

"""Registers VideoCrafter2 and VideoCrafter1 through the ``fifo_diffusion`` entry point.

Torch modules are imported only when a backbone is created, so listing backbones stays fast.
"""

from __future__ import annotations

from typing import Any

from fifo_core.hookspecs import hookimpl
from fifo_videocrafter.backbone import DEFAULTS, VideoCrafterOptions

_DESCRIPTIONS = {
    "videocrafter2": "VideoCrafter2 text-to-video (320x512) from its original model.ckpt; --option checkpoint=PATH",
    "videocrafter1": "VideoCrafter1 text-to-video 320x512 from its original model.ckpt; --option checkpoint=PATH",
    "videocrafter1-1024": "VideoCrafter1 text-to-video 576x1024 from its original model.ckpt; --option checkpoint=PATH",
}
_ALIASES = {"videocrafter2": ("vc2",), "videocrafter1": ("vc1",), "videocrafter1-1024": ("vc1-1024",)}


def _factory(variant: str):
    def create(**options: Any):
        from fifo_videocrafter.backbone import VideoCrafterBackbone

        return VideoCrafterBackbone(variant, **options)

    create.__name__ = f"create_{variant.replace('-', '_')}"
    return create


@hookimpl
def register_backbones(register):
    for variant, defaults in DEFAULTS.items():
        register(
            variant,
            _factory(variant),
            defaults=defaults,
            options=VideoCrafterOptions,
            description=_DESCRIPTIONS[variant],
            aliases=_ALIASES[variant],
        )

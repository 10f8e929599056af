"""Registers the default model, ``fifo-shapes``, through the ``fifo_diffusion`` entry point."""

from fifo_core.plugins import hookimpl
from fifo_shapes.backbone import DEFAULTS, ShapesBackbone, ShapesOptions


@hookimpl
def register_backbones(register):
    register(
        "fifo-shapes",
        ShapesBackbone,
        defaults=DEFAULTS,
        options=ShapesOptions,
        description=(
            "The project's own small model, shipped with the package: coloured shapes moving, bouncing over plain "
            "backgrounds (prompts like 'a red circle moving left on a blue background'; docs/default-model.md)."
        ),
        aliases=("shapes",),
    )

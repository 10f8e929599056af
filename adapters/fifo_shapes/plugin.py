"""Registers the default model, ``fifo-shapes``, through the ``fifo_diffusion`` entry point; it
declares itself the default backbone (``default=True``)."""

from fifo_core.hookspecs import hookimpl
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
        # The default backbone: its weights ship with the package, so a fresh machine makes a real
        # video without a download (docs/default-model.md).
        default=True,
    )

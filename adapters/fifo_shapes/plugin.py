"""Registers the project's own models through the ``fifo_diffusion`` entry point: ``fifo-shapes``,
which declares itself the default backbone (``default=True``), and ``fifo-shapes-tracker``, the
earlier default kept for comparison."""

from fifo_core.hookspecs import hookimpl
from fifo_shapes.backbone import DEFAULTS, ShapesBackbone, ShapesOptions, ShapesTrackerBackbone


@hookimpl
def register_backbones(register):
    register(
        "fifo-shapes",
        ShapesBackbone,
        defaults=DEFAULTS,
        options=ShapesOptions,
        description=(
            "The project's own small video diffusion model, shipped with the package: coloured shapes moving, bouncing "
            "over plain backgrounds (prompts like 'a red circle moving left on a blue background'; docs/default-model.md)."
        ),
        aliases=("shapes",),
        # The default backbone: its weights ship with the package, so a fresh machine makes a real
        # video without a download (docs/default-model.md).
        default=True,
    )
    register(
        "fifo-shapes-tracker",
        ShapesTrackerBackbone,
        defaults=DEFAULTS,
        options=ShapesOptions,
        description=(
            "The earlier default, kept for comparison: after its first clip each frame is the previous one moved by a "
            "learned motion tracker, not new denoising (docs/default-model.md)."
        ),
    )

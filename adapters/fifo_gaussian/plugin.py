"""Registers the Gaussian reference backbone through the ``fifo_diffusion`` entry point."""

from fifo_core.hookspecs import hookimpl
from fifo_gaussian.ar1 import DEFAULTS, GaussianAR1Backbone, GaussianOptions


@hookimpl
def register_backbones(register):
    register(
        "gaussian-ar1",
        GaussianAR1Backbone,
        defaults=DEFAULTS,
        options=GaussianOptions,
        description="Stationary AR(1) Gaussian latents with a closed-form denoiser; ignores the prompt (for testing the engine).",
        aliases=("gaussian",),
    )

"""Registers the diffusers video backbones through the ``fifo_diffusion`` entry point.

Importing this module is cheap: diffusers and transformers load only when a backbone is created.
"""

from fifo_core.hookspecs import hookimpl
from fifo_diffusers.defaults import (
    ANIMATEDIFF_DEFAULTS,
    LATTE_DEFAULTS,
    LTX_DEFAULTS,
    MODELSCOPE_DEFAULTS,
    WAN_1_3B_DEFAULTS,
    WAN_14B_DEFAULTS,
    ZEROSCOPE_DEFAULTS,
    AnimateDiffOptions,
    LatteOptions,
    LTXOptions,
    ModelScopeOptions,
    Wan13BOptions,
    Wan14BOptions,
    ZeroscopeOptions,
)


def _zeroscope(**options):
    from fifo_diffusers.unet3d import UNet3DBackbone

    return UNet3DBackbone.load(ZEROSCOPE_DEFAULTS, **options)


def _modelscope(**options):
    from fifo_diffusers.unet3d import UNet3DBackbone

    return UNet3DBackbone.load(MODELSCOPE_DEFAULTS, **options)


def _wan_1_3b(**options):
    from fifo_diffusers.wan import WanBackbone

    return WanBackbone.load(WAN_1_3B_DEFAULTS, **options)


def _wan_14b(**options):
    from fifo_diffusers.wan import WanBackbone

    return WanBackbone.load(WAN_14B_DEFAULTS, **options)


def _animatediff(**options):
    from fifo_diffusers.animatediff import AnimateDiffBackbone

    return AnimateDiffBackbone.load(ANIMATEDIFF_DEFAULTS, **options)


def _latte(**options):
    from fifo_diffusers.latte import LatteBackbone

    return LatteBackbone.load(LATTE_DEFAULTS, **options)


def _ltx(**options):
    from fifo_diffusers.ltx import LTXBackbone

    return LTXBackbone.load(LTX_DEFAULTS, **options)


@hookimpl
def register_backbones(register):
    register(
        "zeroscope-v2-576w",
        _zeroscope,
        defaults=ZEROSCOPE_DEFAULTS,
        options=ZeroscopeOptions,
        description="zeroscope v2 576w (diffusers UNet3DConditionModel), per-frame time embedding shim; 1 frame per latent.",
        aliases=("zeroscope",),
    )
    register(
        "modelscope-t2v",
        _modelscope,
        defaults=MODELSCOPE_DEFAULTS,
        options=ModelScopeOptions,
        description="ModelScope text-to-video 1.7B (diffusers UNet3DConditionModel), per-frame time embedding shim.",
        aliases=("modelscope",),
    )
    register(
        "wan2.1-t2v-1.3b",
        _wan_1_3b,
        defaults=WAN_1_3B_DEFAULTS,
        options=Wan13BOptions,
        description="Wan 2.1 T2V 1.3B (flow matching, native per-token timesteps); causal VAE: 4 frames per latent "
        "(the first latent gives 1).",
        aliases=("wan", "wan2.1"),
    )
    register(
        "wan2.1-t2v-14b",
        _wan_14b,
        defaults=WAN_14B_DEFAULTS,
        options=Wan14BOptions,
        description="Wan 2.1 T2V 14B (flow matching, native per-token timesteps); causal VAE: 4 frames per latent.",
    )
    register(
        "animatediff-v1-5",
        _animatediff,
        defaults=ANIMATEDIFF_DEFAULTS,
        options=AnimateDiffOptions,
        description="AnimateDiff: Stable Diffusion 1.5 + motion adapter v1.5 (diffusers UNetMotionModel), per-frame "
        "time embedding shim; 1 frame per latent.",
        aliases=("animatediff",),
    )
    register(
        "latte-1",
        _latte,
        defaults=LATTE_DEFAULTS,
        options=LatteOptions,
        description="Latte-1 (diffusers LatteTransformer3DModel, T5), per-frame adaLN-single shim; DDPM; 1 frame per "
        "latent; window f must be 16 (its video_length).",
        aliases=("latte",),
    )
    register(
        "ltx-video",
        _ltx,
        defaults=LTX_DEFAULTS,
        options=LTXOptions,
        description="LTX-Video 0.9 (flow matching, native per-token timesteps; needs --option flow_shift=...); VAE 8x "
        "in time: 8 frames per latent (the first latent gives 1), decoded in overlapping chunks.",
        aliases=("ltx",),
    )

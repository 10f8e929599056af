"""Relative MSE of noise prediction for any backbone (fifo_core.rel_mse), checked where the
answer is known: on the Gaussian AR(1) backbone it must match the closed form."""

from __future__ import annotations

import pytest
import torch

from fifo_core.partition import QueueLayout
from fifo_core.rel_mse import backbone_rel_mse
from fifo_gaussian.ar1 import GaussianAR1Backbone
from fifo_gaussian.rel_mse import exact_rel_mse
from fifo_shapes.rel_mse import world_clips


@pytest.mark.parametrize(("partitions", "lookahead"), [(1, False), (2, True)])
def test_the_estimate_matches_the_closed_form_on_the_gaussian_backbone(partitions: int, lookahead: bool) -> None:
    """The generic estimate goes through the backbone's own predict and the core's conversion of
    model outputs to noise estimates; the Gaussian backbone's expectation is exact."""
    backbone = GaussianAR1Backbone(rho=0.9, denoiser="single-level", channels=1, downsample=1)
    layout = QueueLayout(8, partitions, lookahead)
    draws = 2048
    factor = torch.linalg.cholesky(backbone.covariance(8)).float()
    clean = (factor @ torch.randn(8, draws, generator=torch.Generator().manual_seed(1))).T.reshape(draws, 1, 8, 1, 1)
    estimate = backbone_rel_mse(backbone, layout, clean, [""] * draws, seed=0)
    exact = exact_rel_mse(backbone, layout, backbone.schedule.grid(layout.num_levels))
    assert estimate.ratio.shape == (layout.num_levels,)
    assert torch.allclose(estimate.ratio, exact.ratio, atol=0.08), (estimate.ratio, exact.ratio)
    assert abs(float(estimate.ratio.mean() - exact.ratio.mean())) < 0.02


def test_the_default_model_gives_a_finite_ratio_per_level() -> None:
    from fifo_shapes.backbone import ShapesBackbone

    backbone = ShapesBackbone()
    clips, captions = world_clips(4, 8, seed=0)
    assert clips.shape == (4, 3, 8, 32, 32) and len(captions) == 4
    result = backbone_rel_mse(backbone, QueueLayout(8, 1, False), clips, [backbone.encode_prompt(text) for text in captions])
    assert result.ratio.shape == (8,) and bool(torch.isfinite(result.ratio).all())
    assert bool((result.diagonal > 0).all()) and not torch.equal(result.diagonal, result.original)
    with pytest.raises(ValueError, match="window"):
        backbone_rel_mse(backbone, QueueLayout(4, 1, False), clips, ["x"] * 4)

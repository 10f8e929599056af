"""The comparison that tests against recorded outputs use (fifo_core.testing)."""

from __future__ import annotations

import pytest
import torch

from fifo_core.testing import assert_matches_recorded, relative_error


def test_relative_error_is_scaled_by_the_largest_recorded_value() -> None:
    recorded = torch.tensor([4.0, -2.0, 1.0], dtype=torch.float64)
    assert relative_error(recorded + torch.tensor([0.0, 0.0, 4e-5]), recorded) == pytest.approx(1e-5)
    assert relative_error(recorded * 100 + 4e-3, recorded * 100) == pytest.approx(1e-5)


def test_a_summation_order_difference_passes_and_a_real_difference_fails() -> None:
    generator = torch.Generator().manual_seed(0)
    recorded = torch.randn(4, 64, generator=generator)
    # the size of what a new library version changed in the Latte test: 1.86e-5 absolute on values near 4
    assert_matches_recorded(recorded + 1.86e-5 * torch.sign(recorded), recorded)
    with pytest.raises(AssertionError, match="relative error"):
        assert_matches_recorded(recorded + 1e-3, recorded)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_matches_recorded(recorded[:2], recorded)

"""Shared set-up for the Gaussian backbone's tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests run thousands of tiny (8x8) matrix products; on a busy 2-core machine torch's
    intra-op threads spin and make each product ~100x slower, so run them on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

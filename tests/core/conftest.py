"""Shared set-up for the core's tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests run many tiny tensor operations on a shared 2-core machine, where torch's
    intra-op threads only spin; one thread keeps them fast and their timing steady."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

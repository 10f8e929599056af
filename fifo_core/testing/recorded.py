"""Outputs recorded from reference code, compared by their relative error over the whole tensor,
``max |ours - theirs| / max |theirs|``: an element-wise absolute tolerance depends on the scale of
the tensor and on the order in which a library version happens to sum, so it can fail on the next
release of torch or diffusers while nothing in the model changed. The relative error of the whole
tensor does not; in float32 a faithful port stays below ``1e-5`` (about 100 float32 ulps of the
largest value).
"""

from __future__ import annotations

import torch

RECORDED_OUTPUT_TOLERANCE = 1e-5


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """``max |ours - theirs| / max |theirs|``, computed in float64; shapes must match."""
    if ours.shape != theirs.shape:
        raise AssertionError(f"shapes differ: ours {tuple(ours.shape)}, the recorded output {tuple(theirs.shape)}")
    scale = theirs.double().abs().max()
    difference = (ours.double() - theirs.double()).abs().max()
    return float(difference / scale) if scale > 0 else float(difference)


def assert_matches_recorded(ours: torch.Tensor, theirs: torch.Tensor, tolerance: float = RECORDED_OUTPUT_TOLERANCE) -> None:
    """Fail unless :func:`relative_error` of ``ours`` against the recorded ``theirs`` is below ``tolerance``."""
    error = relative_error(ours, theirs)
    if not error < tolerance:
        raise AssertionError(
            f"relative error {error:.3g} against the recorded output is not below {tolerance:g} "
            f"(largest difference {float((ours.double() - theirs.double()).abs().max()):.3g}, "
            f"largest recorded value {float(theirs.double().abs().max()):.3g})"
        )

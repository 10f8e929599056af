"""Helpers for tests of backbones and adapters, the project's own and third parties'.

* :class:`BackboneConformance`: the checks every backbone passes, as a mixin for a pytest test
  class (docs/write-an-adapter.md shows how a third-party adapter runs them);
* :func:`relative_error`, :func:`assert_matches_recorded`: compare an output with one recorded
  from reference code.

Importing this package needs neither pytest nor any adapter.
"""

from fifo_core.testing.conformance import BackboneConformance
from fifo_core.testing.recorded import RECORDED_OUTPUT_TOLERANCE, assert_matches_recorded, relative_error

__all__ = ["RECORDED_OUTPUT_TOLERANCE", "BackboneConformance", "assert_matches_recorded", "relative_error"]

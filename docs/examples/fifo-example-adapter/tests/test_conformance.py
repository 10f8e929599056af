"""The checks every fifo-diffusion backbone passes, run on this one (pytest tests/)."""

import pytest

from fifo_core.testing import BackboneConformance
from fifo_example_adapter import WhiteNoiseBackbone


@pytest.fixture(scope="module")
def backbone():
    return WhiteNoiseBackbone()


class TestWhiteNoiseConformance(BackboneConformance):
    video_size = (32, 32)

    @pytest.mark.skip(reason="this model ignores text")
    def test_prompts_change_the_prediction(self, backbone):
        pass

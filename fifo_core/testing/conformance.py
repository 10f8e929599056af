"""The checks every backbone passes, as a mixin for a pytest test class.

A test module provides a ``backbone`` fixture (a loaded backbone, ideally a tiny seeded model)
and a class that inherits the checks::

    import pytest
    from fifo_core.testing import BackboneConformance

    @pytest.fixture(scope="module")
    def backbone():
        return MyBackbone(tiny=True)

    class TestMyBackbone(BackboneConformance):
        video_size = (32, 32)  # (height, width) small enough for the tiny model

A check that does not apply to a backbone (a backbone that ignores its prompt, say) is
overridden in the subclass with a ``pytest.mark.skip``.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, ClassVar

import numpy as np
import torch

from fifo_core.backbone import Backbone, FrameDecoder
from fifo_core.config import RunConfig
from fifo_core.sampling import FifoSampler
from fifo_core.testing.recorded import relative_error

# Splitting a call into chunks changes nothing but the order in which a library sums; in float32
# that stays far below this, while a backbone that mixes rows misses it by orders of magnitude.
MAX_BATCH_TOLERANCE = 1e-4


class BackboneConformance:
    video_size: ClassVar[tuple[int, int]]  # (height, width) small enough for the tiny model
    window: ClassVar[int] = 4  # latent frames per window in these checks
    # RunConfig fields of the short run that compares max_batch values; the backbone's own
    # queue start and guided rows are part of what it checks.
    max_batch_run: ClassVar[dict[str, Any]] = {"partitions": 1, "lookahead": True, "guidance_scale": 2.5}
    max_batch_latents: ClassVar[int] = 2  # clean latents compared per max_batch value

    def _inputs(self, backbone, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        shape = backbone.latent_shape(*self.video_size)
        latents = torch.randn(batch, shape[0], self.window, *shape[1:], generator=generator)
        grid = backbone.schedule.grid(max(8, self.window + batch + 1)).timesteps.float()
        timesteps = torch.stack([grid[1 + row : 1 + row + self.window] for row in range(batch)])
        return latents, timesteps

    def test_implements_the_backbone_protocol(self, backbone) -> None:
        assert isinstance(backbone, Backbone)
        assert isinstance(backbone.frame_decoder(), FrameDecoder)

    def test_predict_keeps_the_shape_and_is_deterministic(self, backbone) -> None:
        latents, timesteps = self._inputs(backbone)
        conditioning = [backbone.encode_prompt("a red circle"), backbone.encode_prompt("a blue square")]
        first = backbone.predict(latents, timesteps, conditioning)
        again = backbone.predict(latents, timesteps, conditioning)
        assert first.shape == latents.shape
        assert torch.isfinite(first).all() and first.abs().sum() > 0
        assert torch.equal(first, again)

    def test_prompts_change_the_prediction(self, backbone) -> None:
        latents, timesteps = self._inputs(backbone, batch=1)
        red = backbone.predict(latents, timesteps, [backbone.encode_prompt("a red circle")])
        dog = backbone.predict(latents, timesteps, [backbone.encode_prompt("a dog running")])
        assert not torch.equal(red, dog)

    def test_decoder_yields_uint8_frames_of_the_video_size(self, backbone) -> None:
        shape = backbone.latent_shape(*self.video_size)
        decoder = backbone.frame_decoder()
        frames = [frame for k in range(3) for frame in decoder.decode(torch.randn(shape, generator=torch.Generator().manual_seed(k)))]
        frames += list(decoder.flush())
        per_latent = backbone.defaults.frames_per_latent
        assert len(frames) in (3 * per_latent, 1 + 2 * per_latent)
        assert all(f.shape == (*self.video_size, 3) and f.dtype == np.uint8 for f in frames)

    def test_encode_gives_latents_the_decoder_takes(self, backbone) -> None:
        """The optional ``encode`` (``--init-video``): video frames ``'t 3 H W'`` in ``[-1, 1]``
        to latents ``'t' c h w'``, one latent for the first frame and one for each further
        ``frames_per_latent`` frames, decodable by the backbone's own decoder."""
        if not callable(getattr(backbone, "encode", None)):
            import pytest  # only when the check runs: importing this package needs no pytest

            pytest.skip("no encode: this backbone refuses --init-video and --init-image with an error, which is allowed")
        height, width = self.video_size
        per_latent = backbone.defaults.frames_per_latent
        frames = torch.rand(1 + per_latent, 3, height, width, generator=torch.Generator().manual_seed(0)) * 2 - 1
        latents = backbone.encode(frames)
        assert tuple(latents.shape) == (2, *backbone.latent_shape(height, width)), (
            f"encode of {1 + per_latent} frames returned shape {tuple(latents.shape)}; expected 2 latents of "
            f"{backbone.latent_shape(height, width)} (the first frame alone, then {per_latent} frames per latent)"
        )
        assert torch.isfinite(latents).all()
        decoder = backbone.frame_decoder()
        decoded = [frame for latent in latents for frame in decoder.decode(latent)] + list(decoder.flush())
        assert decoded and all(frame.shape == (height, width, 3) for frame in decoded)

    def test_max_batch_does_not_change_the_video(self, backbone) -> None:
        """The row contract of :meth:`~fifo_core.backbone.Backbone.predict`: rows are independent,
        so the core may cut a model call into chunks of any size (``max_batch``, a memory cap)."""
        unlimited = self._clean_latents(backbone, None)
        for max_batch in (2, 1):
            chunked = self._clean_latents(backbone, max_batch)
            error = relative_error(chunked, unlimited)
            assert error < MAX_BATCH_TOLERANCE, (
                f"with max_batch={max_batch} the clean latents differ from one unlimited call by {error:.3g} "
                f"(relative; largest difference {float((chunked - unlimited).abs().max()):.3g}): predict's output for a "
                "row must not depend on the other rows of its call; take what a row needs from the `rows` argument"
            )

    def _clean_latents(self, backbone, max_batch: int | None) -> torch.Tensor:
        height, width = self.video_size
        config = RunConfig(prompt="a red circle moving left", negative_prompt="a blue square", window=self.window,
                           height=height, width=width, max_batch=max_batch, seed=0, **self.max_batch_run)
        sampler = FifoSampler(backbone, config.resolve(backbone.defaults))
        return torch.stack([clean.latent.float().cpu() for clean in islice(sampler.latents(), self.max_batch_latents)])

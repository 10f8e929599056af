"""fifo-diffusion's backbone-agnostic core: queue, timestep grid, partitioning, lookahead,
per-frame scheduler steps, the sampling loop, configuration, plugins, API and command line."""

from fifo_core.errors import FifoError

__all__ = ["FifoError", "__version__"]
__version__ = "0.1.0"

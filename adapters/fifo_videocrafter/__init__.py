"""VideoCrafter2 and VideoCrafter1 text-to-video models as FIFO-Diffusion backbones, loading their
original checkpoints (see docs/adapters/videocrafter.md)."""

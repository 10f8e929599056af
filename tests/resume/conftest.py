"""The tiny diffusers and VideoCrafter models of tests/adapters and tests/videocrafter, for the
continuation tests."""

from adapters.conftest import animatediff_folder, latte_folder, ltx_folder, unet3d_folder, wan_folder  # noqa: F401
from videocrafter.conftest import tiny_files, tiny_options  # noqa: F401

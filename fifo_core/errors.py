"""Errors that teach: each says what was wrong, what was expected and how to fix it."""

from __future__ import annotations


class FifoError(Exception):
    """Base class of every error fifo-diffusion raises on purpose.

    ``field`` names the configuration field at fault, when there is one, so the command line
    can print ``error: <field>: <message>`` on one line.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{self.field}: {text}" if self.field else text


class ConfigError(FifoError):
    """A run parameter is invalid; raised before any output is created."""


class PluginError(FifoError):
    """A plugin failed to load or to register, or asked for something the core cannot give."""


class SinkError(FifoError):
    """A sink refused its target, or failed while writing."""


class NumericalError(FifoError):
    """A model output held NaN or infinite values; the run stops before the queue changes.

    ``iteration``, ``frame_ids`` and ``levels`` name where (the iteration, the latent frames whose
    output was not finite and their noise levels); ``iteration`` is ``None`` in the clip start.
    """

    def __init__(
        self, message: str, *, iteration: int | None = None, frame_ids: list[int] | None = None, levels: list[int] | None = None
    ) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.frame_ids = frame_ids or []
        self.levels = levels or []

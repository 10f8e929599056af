"""Ending a run on request (Ctrl-C, SIGTERM, another thread) at a point where that is safe.

A signal handler that raises ``KeyboardInterrupt`` can fire anywhere in the main thread,
including inside a lock or a queue that a sink's thread shares. CPython then may leave that
lock released twice or a wake-up lost (measured here: one of 25 SIGTERMed CLI runs hung forever
in ``SinkFanout.close``). So while a run has sinks open, the first signal only records the
request; the run notices it after the current model step or frame, ends as *interrupted* and
closes every sink normally. A second signal raises ``KeyboardInterrupt`` at once, for a step
that never returns; one within a second of the first is taken for a copy of it (torchrun
forwards the SIGINT or SIGTERM it gets to workers that the terminal or ``pkill`` signalled
already). Before the sinks open (loading a model can take minutes) a signal raises at once too:
nothing has been written that could be lost.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SAME_REQUEST_S = 1.0  # a signal this soon after the one that set the request is a copy of it


class RunStopped(KeyboardInterrupt):
    """Raised by the run itself at a safe point once a stop was requested.

    A ``KeyboardInterrupt`` so that code which already treats Ctrl-C as "stop cleanly" needs
    no change.
    """


class StopRequest:
    """A thread-safe flag asking a run to end at its next safe point.

    ``generate(config, stop=request)`` checks it after every model step; call :meth:`set` from
    any thread, or let :meth:`on_signals` set it from Ctrl-C and SIGTERM.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._deferring = False
        self._signalled_at: float | None = None

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def raise_if_set(self) -> None:
        if self._event.is_set():
            raise RunStopped

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """While inside (a run with open sinks), a first signal waits for the next safe point."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    @contextmanager
    def on_signals(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
        """While inside, ``signals`` request a stop: inside :meth:`deferring` the first sets this
        request and a second (a second or more later) raises ``KeyboardInterrupt``; outside it they
        raise at once. The previous handlers come back on exit. Outside the main thread (where
        Python cannot install handlers) this does nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def request_stop(signum: int, frame: Any) -> None:
            now = time.monotonic()
            if self._deferring and self.is_set() and self._signalled_at is not None and now - self._signalled_at < SAME_REQUEST_S:
                return  # the same request again (torchrun forwarding it), not a second one
            if not self._deferring or self.is_set():
                raise KeyboardInterrupt  # nothing to lose yet, or asked twice: do not wait
            self._signalled_at = now
            self.set()

        previous = {signum: signal.signal(signum, request_stop) for signum in signals}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

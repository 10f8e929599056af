"""Fixtures for the sink tests: real RTMP servers on 127.0.0.1, always stopped afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import Nginx, free_port, nginx_executable, rtmp_module, start_receiver, stop, wait_until_listening

INSTALL_HINT = "run scripts/install-test-servers.sh (Debian packages nginx and libnginx-mod-rtmp)"


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    """nginx with the RTMP module on a free port, run from a temp dir. Missing nginx skips the
    test locally but fails it on CI (``CI`` set), where the install script must have run."""
    executable, module = nginx_executable(), rtmp_module()
    if executable is None or module is None:
        missing = "nginx" if executable is None else "nginx's RTMP module (ngx_rtmp_module.so)"
        message = f"{missing} is not installed; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = Nginx(executable, module, tmp_path / "nginx", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Listener:
    """``ffmpeg -listen 1``: a one-connection RTMP server that saves every frame it receives."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"rtmp://127.0.0.1:{self.port}/live/test-key"
        self.output = directory / "received.rgb"
        self.process = start_receiver(self.url, self.output, listen=True)
        wait_until_listening(self.port, self.process)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the publisher's disconnect to end the listener; its exit status."""
        return self.process.wait(timeout=timeout)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    server = Listener(tmp_path)
    try:
        yield server
    finally:
        stop(server.process)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts itself; each is stopped when the test ends, whatever happened."""
    processes: list[subprocess.Popen] = []
    try:
        yield processes
    finally:
        for process in processes:
            stop(process)

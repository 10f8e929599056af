"""Real servers on 127.0.0.1 for the RTMP tests: an nginx with the RTMP module, ffmpeg as an RTMP
listener and as a player. Every process started here is ended by the caller's ``finally``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np

RTMP_MODULE_CANDIDATES = (
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
    "/usr/share/nginx/modules/ngx_rtmp_module.so",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``, read from /proc so that no connection is
    made: ``ffmpeg -listen 1`` accepts exactly one, and a probe would use it up."""
    wanted = f"0100007F:{port:04X}"
    for table in ("/proc/net/tcp",):
        with open(table) as lines:
            for line in lines:
                fields = line.split()
                if len(fields) > 3 and fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                    return True
    return False


def wait_until_listening(port: int, process: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with status {process.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.02)


def wait_until_free(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"127.0.0.1:{port} is still listening after {timeout}s")
        time.sleep(0.02)


def stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """End a process started by a test: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


# -- ffmpeg ----------------------------------------------------------------------------------


def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def start_receiver(url: str, output: Path, *, listen: bool) -> subprocess.Popen:
    """ffmpeg reading ``url`` (as the RTMP server itself when ``listen``, else as a player) and
    writing every frame it receives, unchanged in number, as raw rgb24 to ``output``."""
    command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    if listen:
        command += ["-listen", "1"]
    command += ["-i", url, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", str(output)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_raw_frames(path: Path, height: int, width: int) -> np.ndarray:
    """``'n h w 3'`` frames from a raw rgb24 file (a cut-off last frame is left out)."""
    data = np.fromfile(path, np.uint8) if path.exists() else np.empty(0, np.uint8)
    frame_bytes = height * width * 3
    count = len(data) // frame_bytes
    return data[: count * frame_bytes].reshape(count, height, width, 3)


# -- nginx -----------------------------------------------------------------------------------


def nginx_executable() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
    )


def rtmp_module() -> str | None:
    return next((path for path in RTMP_MODULE_CANDIDATES if os.path.exists(path)), None)


class Nginx:
    """nginx with the RTMP module, run unprivileged-style from a temp dir: prefix, config, pid
    file and logs all live there, and nothing system-wide is touched."""

    def __init__(self, executable: str, module: str, directory: Path, port: int) -> None:
        self.executable = executable
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"""
load_module {module};
daemon off;
master_process on;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{
    worker_connections 64;
}}
rtmp {{
    access_log {directory}/rtmp-access.log;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
        }}
    }}
}}
"""
        )

    def start(self) -> None:
        # -e: the error log used before the config is read (otherwise /var/log/nginx/error.log)
        self.process = subprocess.Popen(
            [self.executable, "-p", str(self.directory), "-c", str(self.config), "-e", str(self.directory / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_until_listening(self.port, self.process)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}; nginx error log:\n{self.error_log()}") from None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)  # SIGTERM: nginx's fast shutdown, which drops every connection
            self.process = None
            wait_until_free(self.port)

    def error_log(self) -> str:
        log = self.directory / "error.log"
        return log.read_text()[-3000:] if log.exists() else "(no error log)"

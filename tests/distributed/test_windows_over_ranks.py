"""Windows shared over two gloo processes give the single-process output, and the CLI's torchrun
path writes the video from rank 0 only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fifo_core.api import RunConfig, make_sampler
from fifo_core.distributed import WindowGroup

FRAMES = 24


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def latents_of(config: RunConfig, group: WindowGroup | None) -> torch.Tensor:
    sampler = make_sampler(config, group=group)
    return torch.stack([clean.latent for _, clean in zip(range(FRAMES), sampler.latents())])


def configs() -> list[RunConfig]:
    return [
        RunConfig(prompt="x", backbone="gaussian-ar1", window=4, partitions=3, lookahead=True, seed=5),
        RunConfig(prompt="x", backbone="gaussian-ar1", window=5, partitions=2, lookahead=True, seed=6),  # odd f: 4 windows over 2 ranks
        RunConfig(prompt="x", backbone="gaussian-ar1", window=4, partitions=3, lookahead=False, start="clip", seed=7),  # 3 windows: uneven shares
    ]


def worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ["FIFO_DIFFUSION_PLUGINS"] = "gaussian"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        group = WindowGroup(rank=rank, world_size=world_size)
        results = [latents_of(config, group) for config in configs()]
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_ranks_reproduce_the_single_process_run(tmp_path: Path) -> None:
    out = str(tmp_path / "latents")
    mp.spawn(worker, args=(2, free_port(), out), nprocs=2, join=True)
    single = [latents_of(config, None) for config in configs()]
    for rank in (0, 1):
        shared = torch.load(f"{out}.{rank}")
        for expected, got in zip(single, shared):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_rows_are_shared_round_robin_and_cover_every_row() -> None:
    groups = [WindowGroup(rank=rank, world_size=3) for rank in range(3)]
    shares = [group.my_rows(8) for group in groups]
    assert sorted(row for share in shares for row in share) == list(range(8))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.timeout(240)
def test_torchrun_cli_writes_one_video_from_rank_zero(tmp_path: Path) -> None:
    video = tmp_path / "shared.mp4"
    env = dict(os.environ, FIFO_DIFFUSION_PLUGINS="gaussian,sinks", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(free_port()), "-m", "fifo_core.cli", "generate", "a red circle", "--backbone", "gaussian-ar1", "--frames", "20",
         "--sink", str(video), "-q"],
        env=env, capture_output=True, text=True, timeout=220,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert frames == 20


@pytest.mark.timeout(240)
def test_torchrun_generate_many_spreads_prompts_one_video_each(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\na green triangle\n")
    env = dict(os.environ, FIFO_DIFFUSION_PLUGINS="gaussian,sinks", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(free_port()), "-m", "fifo_core.cli", "generate-many", str(prompts), "--backbone", "gaussian-ar1", "--frames", "6",
         "--sink", f"{tmp_path}/video_{{index}}/", "-q"],
        env=env, capture_output=True, text=True, timeout=220,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[rank 0] a red circle" in result.stderr and "[rank 1] a blue square" in result.stderr
    assert "[rank 0] a green triangle" in result.stderr
    for index in range(3):
        assert len(list((tmp_path / f"video_{index}").glob("*.png"))) == 6

"""A stop requested on one rank ends the run on every rank after the same iteration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from fifo_core.api import RunConfig, StopRequest, generate
from fifo_core.distributed import WindowGroup
from fifo_core.plugins import default_plugins, hookimpl

from .test_windows_over_ranks import free_port

STOP_AT_ITERATION = 30


def worker(rank: int, world_size: int, port: int, folder: str) -> None:
    os.environ["FIFO_DIFFUSION_PLUGINS"] = "gaussian,sinks"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        stop = StopRequest()
        iterations: list[int] = []

        class StopOnRankOne:
            @hookimpl
            def on_iteration(self, event) -> None:
                iterations.append(event.iteration)
                if rank == 1 and event.iteration == STOP_AT_ITERATION:
                    stop.set()  # as a SIGTERM that reached this rank alone would

        plugins = default_plugins()
        plugins.register(StopOnRankOne())
        config = RunConfig(prompt="x", backbone="gaussian-ar1", window=4, partitions=2, sinks=[f"{folder}/frames/"])
        summary = generate(config, plugins=plugins, group=WindowGroup(rank=rank, world_size=world_size), stop=stop)
        Path(f"{folder}/rank{rank}").write_text(f"{summary.interrupted} {summary.frames} {iterations[-1]}")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_a_stop_on_one_rank_stops_both_after_the_same_iteration(tmp_path: Path) -> None:
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    reports = [(tmp_path / f"rank{rank}").read_text().split() for rank in (0, 1)]
    assert reports[0] == reports[1], reports
    interrupted, frames, last_iteration = reports[0]
    assert interrupted == "True" and int(last_iteration) == STOP_AT_ITERATION
    assert len(list((tmp_path / "frames").glob("*.png"))) == int(frames) > 0

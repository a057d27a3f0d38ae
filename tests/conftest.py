"""Shared pytest configuration: markers, seeds, the real data in ../shared/data and a gloo launcher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """``$FACEZOO_SHARED_DATA`` or ``../shared/data`` beside the checkout, if present."""
    root = Path(os.environ.get("FACEZOO_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root if root.is_dir() else None


@pytest.fixture
def shared_data():
    """Path to the real sample files; the test is skipped cleanly where they are absent (a fresh clone)."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is not present (set FACEZOO_SHARED_DATA to use the real samples)")
    return root


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)


def _gloo_worker(rank: int, fn, world: int, port: int, data, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.save(fn(data, rank, world), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture
def gloo_run(tmp_path):
    """``run(fn, data, world=2)``: ``fn(data, rank, world)`` in ``world`` gloo processes; returns the per-rank
    results. "fork" where available (children inherit the imports: ~0.3 s instead of ~5 s per spawned process
    re-importing torch, torchmetrics and open3d), else "spawn" (then ``fn`` must be a module-level function).
    A deadline turns a hang into a failure."""
    import multiprocessing
    import socket
    import time

    import torch
    import torch.multiprocessing as mp

    def run(fn, data, world: int = 2, deadline_s: float = 120.0) -> list:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        args = (fn, world, port, data, str(tmp_path))
        ctx = mp.start_processes(_gloo_worker, args=args, nprocs=world, join=False, start_method=method)
        end = time.monotonic() + deadline_s
        while not ctx.join(timeout=1.0):
            if time.monotonic() > end:
                for p in ctx.processes:
                    p.kill()
                pytest.fail(f"DDP workers did not finish within {deadline_s} s")
        return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world)]

    return run

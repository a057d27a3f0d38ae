"""Two CPU processes (gloo): the training samplers deal disjoint samples to the ranks."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from facezoo.data import IdentityBalancedSampler, ShardedRandomSampler


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        a = ShardedRandomSampler(range(101), seed=3)  # world size and rank come from torch.distributed
        a.set_epoch(2)
        b = IdentityBalancedSampler([i // 4 for i in range(40)], p=2, k=4, seed=0)
        torch.save({"a": list(a), "b": list(b), "world": a.num_replicas}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_samplers_under_gloo(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in range(2))
    assert r0["world"] == 2
    for key, n in (("a", 50), ("b", 16)):  # b: 10 ids // p=2 = 5 batches -> 2 per rank x 8
        assert len(r0[key]) == len(r1[key]) == n
        assert set(r0[key]).isdisjoint(r1[key])

import json
from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facezoo.data import (
    IdentityBalancedSampler,
    MixtureSampler,
    ShardDataset,
    ShardedRandomSampler,
    ShardError,
    ShardWriter,
    collate,
    sir_probabilities,
)
from facezoo.data.io import BadSampleError


def test_sharded_sampler_no_duplicates_across_ranks():
    ranks = [list(ShardedRandomSampler(range(103), num_replicas=4, rank=r, seed=1)) for r in range(4)]
    flat = [i for r in ranks for i in r]
    assert len(flat) == len(set(flat)) == 100 and all(len(r) == 25 for r in ranks)
    s = ShardedRandomSampler(range(10), 1, 0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first and sorted(list(s)) == sorted(first)


def test_identity_balanced_sampler_pxk_and_ddp():
    labels = [i // 5 for i in range(50)] + [10, 11, 11]  # 10 ids x 5 images, id 10 with 1 image, id 11 with 2
    per_rank = [
        list(IdentityBalancedSampler(labels, p=3, k=4, num_replicas=2, rank=r, seed=0)) for r in range(2)
    ]
    assert all(len(r) == 2 * 12 for r in per_rank)  # 12 ids // 3 = 4 global batches, 2 per rank
    seen = set()
    for r in per_rank:
        for b in range(0, len(r), 12):
            batch = r[b : b + 12]
            ids = Counter(labels[i] for i in batch)
            assert len(ids) == 3 and set(ids.values()) == {4}
            assert seen.isdisjoint(batch)
            seen |= set(batch)
    with pytest.raises(ValueError, match="at least p=20"):
        IdentityBalancedSampler(labels, p=20, k=2, num_replicas=1, rank=0)


def test_mixture_sampler_proportions_and_ranks():
    p_recog, p_recon = sir_probabilities(9000, 1000)
    assert p_recog == pytest.approx(0.1)
    ranks = [list(MixtureSampler([1000, 300], [0.3, 0.7], 2000, num_replicas=2, rank=r)) for r in range(2)]
    flat = [i for r in ranks for i in r]
    frac = np.mean([i >= 1000 for i in flat])
    assert abs(frac - 0.7) < 0.05 and len(flat) == 2000
    member0 = [i for i in flat if i < 1000]
    assert len(member0) == len(set(member0))  # fewer draws than its size: no repeats, even across ranks


def _samples(n):
    return [
        {
            "image": torch.rand(3, 16, 16),
            "landmarks68": torch.rand(68, 2),
            "identity": i % 3,
            "yaw": float(i),
            "params": {"pose": torch.rand(7)},
            "affine": torch.eye(2, 3, dtype=torch.float64),
            "path": f"img{i}.jpg",
        }
        for i in range(n)
    ]


def test_shard_round_trip_and_workers(tmp_path):
    src = _samples(7)
    with ShardWriter(tmp_path / "train", "toy", "train", samples_per_shard=3) as w:
        for s in src:
            w.add(s)
    manifest = json.loads((tmp_path / "train/manifest.json").read_text())
    assert manifest["count"] == 7 and [s["count"] for s in manifest["shards"]] == [3, 3, 1]
    ds = ShardDataset(tmp_path / "train", verify="full")
    assert ds.labels == [i % 3 for i in range(7)]
    s = ds[4]
    torch.testing.assert_close(s["image"], (src[4]["image"] * 255).round() / 255, atol=1 / 255 + 1e-6, rtol=0)
    torch.testing.assert_close(s["landmarks68"], src[4]["landmarks68"])
    assert (
        s["path"] == "img4.jpg"
        and s["yaw"] == 4.0
        and s["identity"] == 1
        and s["params"]["pose"].shape == (7,)
    )
    batches = list(DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate))
    assert sum(len(b["image"]) for b in batches) == 7


def test_shard_verification_errors(tmp_path):
    with ShardWriter(tmp_path / "s", "toy", "train", samples_per_shard=4) as w:
        for s in _samples(5):
            w.add(s)
    ShardDataset(tmp_path / "s")
    # a flipped byte in one image: sizes still match, the per-sample crc catches it on read
    with h5py.File(tmp_path / "s/train-00000.h5", "r+") as f:
        img = f["image"][1]
        img[0, 0, 0] ^= 0xFF
        f["image"][1] = img
    man = json.loads((tmp_path / "s/manifest.json").read_text())
    man["shards"][0]["bytes"] = (tmp_path / "s/train-00000.h5").stat().st_size
    (tmp_path / "s/manifest.json").write_text(json.dumps(man))
    ds = ShardDataset(tmp_path / "s")
    with pytest.raises(BadSampleError, match=r"train-00000.h5\[1\]: image crc32 mismatch"):
        ds[1]
    with pytest.raises(ShardError, match="sha256 mismatch"):
        ShardDataset(tmp_path / "s", verify="full")
    man["count"] = 6
    (tmp_path / "s/manifest.json").write_text(json.dumps(man))
    with pytest.raises(ShardError, match="do not add up"):
        ShardDataset(tmp_path / "s")
    man["count"] = 5
    (tmp_path / "s/manifest.json").write_text(json.dumps(man))
    (tmp_path / "s/train-00001.h5").unlink()
    with pytest.raises(ShardError, match="train-00001.h5: shard listed in the manifest is missing"):
        ShardDataset(tmp_path / "s")
    with pytest.raises(ShardError, match="manifest is missing"):
        ShardDataset(tmp_path / "nothing")

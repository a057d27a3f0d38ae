"""Data-loading throughput: raw JPEG folder (decode + align + warp per sample) vs HDF5 shards (prepared
crops).

Writes a synthetic 300W-LP-like folder (450x450 JPEGs + .mat), packs it with ``facezoo prepare``, then times
``DataLoader(num_workers=2, batch_size=64)`` over both. Prints a table and writes
benchmarks/results/data_loading.json.

    python benchmarks/data_loading.py [--n 512] [--size 224] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from facezoo.datamodules import W300LP
from PIL import Image
from scipy.io import savemat

from facezoo.cli import main as facezoo_main


def make_raw(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    folder = root / "AFW"
    folder.mkdir(parents=True)
    base = np.asarray(Image.new("RGB", (450, 450), (120, 90, 80)))
    for i in range(n):
        img = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"AFW_{i // 4}_1_{i % 4}.jpg", quality=90)
        ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        pt2d = np.stack([225 + 90 * np.cos(ang), 225 + 110 * np.sin(ang)])
        savemat(
            folder / f"AFW_{i // 4}_1_{i % 4}.mat",
            {
                "Pose_Para": np.array([[0.1, 0.2, 0.0, 225, 225, 0, 1e-3]]),
                "Shape_Para": rng.normal(size=(199, 1)),
                "Exp_Para": rng.normal(size=(29, 1)),
                "pt2d": pt2d,
            },
        )


def throughput(dm: W300LP, epochs: int = 2) -> float:
    loader = dm.train_dataloader()
    next(iter(loader))  # start the workers
    best = 0.0
    for _ in range(epochs):
        t0, count = time.perf_counter(), 0
        for batch in loader:
            count += len(batch["image"])
        best = max(best, count / (time.perf_counter() - t0))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        raw, shards = Path(tmp) / "300W_LP", Path(tmp) / "shards"
        make_raw(raw, args.n)
        facezoo_main(
            ["prepare", "w300lp", "--root", str(raw), "--out", str(shards), "--image-size", str(args.size)]
        )
        common = dict(batch_size=args.batch, num_workers=args.workers, image_size=args.size)
        rows = {
            "raw_jpeg": throughput(W300LP(root=str(raw), **common)),
            "hdf5_shards": throughput(W300LP(shards=str(shards), **common), epochs=3),
        }
    print(
        f"\n{'source':<14}{'samples/s':>12}   ({args.n} samples, {args.size}px crops, {args.workers} workers)"
    )
    for k, v in rows.items():
        print(f"{k:<14}{v:>12.0f}")
    result = {
        "samples_per_s": rows,
        "n": args.n,
        "size": args.size,
        "workers": args.workers,
        "batch": args.batch,
        "goal_shards": 2000,
        "machine": platform.platform(),
        "python": sys.version.split()[0],
    }
    out = Path(__file__).parent / "results" / "data_loading.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

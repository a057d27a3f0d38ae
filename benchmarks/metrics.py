"""Metric speed: per-sample cost of the scan protocols (similarity ICP, MICC mesh RMSE, Florence NME3D) on
BFM-sized meshes, and batched landmark NME / NME3D / verification. Prints a table, writes
benchmarks/results/metrics.json.

    python benchmarks/metrics.py [--vertices 35000] [--scan 40000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from facezoo.geometry.icp import similarity_icp
from facezoo.metrics import (
    format_table,
    kfold_accuracy,
    landmark_nme,
    mesh_rmse,
    nme3d,
    nme3d_florence,
)


def height(xy: np.ndarray) -> np.ndarray:
    X, Y = xy[:, 0] / 70.0, xy[:, 1] / 90.0
    Z = 50 * np.sqrt(np.clip(1 - 0.7 * X**2 - 0.5 * Y**2, 0, None)) + 20 * np.exp(-(X**2 / 0.02 + Y**2 / 0.1))
    return Z + 4 * X * Y - 6 * np.exp(-((X - 0.4) ** 2 + (Y - 0.3) ** 2) / 0.02)


def face_mesh(n_vertices: int):
    k = int(np.sqrt(n_vertices))
    u = np.linspace(-1, 1, k)
    X, Y = np.meshgrid(u * 70, u * 90)
    xy = np.stack([X.ravel(), Y.ravel()], 1)
    V = np.c_[xy, height(xy)]
    i = np.arange(k - 1)
    a = (i[None, :] + k * i[:, None]).ravel()
    T = np.concatenate([np.stack([a, a + 1, a + k + 1], 1), np.stack([a, a + k + 1, a + k], 1)])
    return V, T


def timeit(fn, repeats: int) -> float:
    fn()
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vertices", type=int, default=35_000)
    ap.add_argument("--scan", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    V, T = face_mesh(args.vertices)
    xy = rng.uniform(-1, 1, (args.scan, 2)) * [70, 90]
    scan = np.c_[xy, height(xy)] + rng.normal(scale=0.2, size=(args.scan, 3))
    nose = scan[np.argmax(scan[:, 2])]
    R = Rotation.from_rotvec([0.05, -0.08, 0.02]).as_matrix()
    pred = 1.05 * V @ R.T + [3.0, -2.0, 4.0]

    rows = {}
    rows["similarity_icp (point)"] = timeit(lambda: similarity_icp(scan, pred), args.repeats)
    rows["similarity_icp (point,plane,point)"] = timeit(
        lambda: similarity_icp(scan, pred, stages=("point", "plane", "point")), args.repeats
    )
    rmse_value = mesh_rmse(pred, T, scan, nose).item()
    rows["mesh_rmse (surface)"] = timeit(lambda: mesh_rmse(pred, T, scan, nose), args.repeats)
    rows["mesh_rmse (tangent_plane)"] = timeit(
        lambda: mesh_rmse(pred, T, scan, nose, distance="tangent_plane"), args.repeats
    )
    rows["nme3d_florence"] = timeit(lambda: nme3d_florence(pred, scan), args.repeats)
    gt = torch.rand(2000, 68, 2, dtype=torch.float64) * 400
    rows["landmark_nme (2000 images)"] = timeit(lambda: landmark_nme(gt + 1.0, gt), args.repeats)
    v = torch.rand(64, args.vertices, 3)
    rows["nme3d (64 x V)"] = timeit(lambda: nme3d(v + 1.0, v), args.repeats)
    d, same = torch.rand(6000), torch.rand(6000) < 0.5
    rows["kfold_accuracy (6000 pairs)"] = timeit(lambda: kfold_accuracy(d, same), args.repeats)

    table = {name: {"seconds": t} for name, t in rows.items()}
    print(f"vertices={len(V)} scan={len(scan)} threads={torch.get_num_threads()} ({platform.processor()})")
    print(format_table(table, precision=4, row_header="operation"))
    print(f"mesh_rmse value on the noisy scan (noise sd 0.2 mm): {rmse_value:.4f} mm")
    out = Path(__file__).parent / "results" / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "vertices": len(V),
                "scan_points": len(scan),
                "seconds": rows,
                "mesh_rmse_mm": rmse_value,
                "machine": platform.platform(),
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

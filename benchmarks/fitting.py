"""Landmark fitting on real photos: facezoo's batched fitter against eos, the standard C++ fitting library.

    python benchmarks/fitting.py                  # table printed, JSON in benchmarks/results/fitting.json
    python benchmarks/fitting.py --data DIR --sfm DIR --repeats 5

Both fit the Surrey Face Model (``sfm_shape_3448.bin`` + its 6 expression blendshapes; ``../shared/data/sfm``)
to the AFLW2000-3D samples (``../shared/data/aflw2000_3d``) given their ground-truth 68 landmarks
(``pt3d_68``'s x, y: the 3D landmarks' projections). eos: ``eos.fitting.fit_shape_and_pose`` with its
defaults (5 iterations, lambda 30, all 63 shape components, NNLS blendshapes, contour + occluding-edge
correspondences from ``sfm_model_contours.json`` and the mesh's edge topology, built here from the triangles
as eos's ``EdgeTopology`` wants it, 1-based). facezoo: :func:`facezoo.fitting.fit_landmarks` (weak
perspective, moving contour, N(0,1) prior), all photos in one batch.

Reported per method: 2D NME (%) over the landmarks both fit (the 50 iBUG points with an SFM vertex: iBUG 9 and
18-68 minus the inner mouth corners 61 and 65; the jaw is
fitted by both but eos does not report which contour vertex it used, so it is left out of the shared
number), normalised by sqrt(w h) of the ground-truth box as AFLW2000-3D's protocol; the 3D landmark error of
the
same points against ``pt3d_68`` after a least-squares similarity alignment (Umeyama), normalised the same
way; time per photo (eos: one call per photo, one thread; facezoo: the batch's wall time over its size, after
one warm-up fit, ``--threads`` torch threads; also for the photos tiled ``--tile`` times into one larger
batch,
which shows the per-photo cost of a batched run).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from facezoo.data.landmarks import read_3ddfa_mat
from facezoo.fitting import fit_landmarks
from facezoo.geometry.icp import umeyama
from facezoo.morphable.sfm import load_sfm, read_ibug_to_sfm

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = Path(__file__).resolve().parent / "results" / "fitting.json"


def load_samples(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Names, 2D landmarks ``[N,68,2]``, ``pt3d_68 [N,68,3]`` and image sizes ``(w, h)``."""
    from PIL import Image

    names, lm2d, lm3d, sizes = [], [], [], []
    for mat in sorted(folder.glob("*.mat")):
        d = read_3ddfa_mat(mat)
        names.append(mat.stem)
        lm3d.append(d["pt3d_68"])
        lm2d.append(d["pt3d_68"][:, :2])
        img = mat.with_suffix(".jpg")
        sizes.append(Image.open(img).size if img.is_file() else (450, 450))
    if not names:
        raise FileNotFoundError(f"no AFLW2000-3D .mat files in {folder}")
    return names, np.stack(lm2d), np.stack(lm3d), sizes


def box_norm(points: np.ndarray) -> np.ndarray:
    wh = points.max(1) - points.min(1)
    return np.sqrt(wh[:, 0] * wh[:, 1])


def nme2d(pred: np.ndarray, gt: np.ndarray, keep: np.ndarray, norm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred[:, keep] - gt[:, keep], axis=-1).mean(-1) / norm


def nme3d(pred: np.ndarray, gt3d: np.ndarray, keep: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Mean distance after the best similarity from ``pred [N,L,3]`` (model frame) onto the ground truth
    (image x, y down, z: made right-handed by negating y), over ``norm``."""
    gt = gt3d[:, keep] * np.array([1.0, -1.0, 1.0])
    p = torch.as_tensor(pred[:, keep], dtype=torch.float64)
    g = torch.as_tensor(gt, dtype=torch.float64)
    r, t, s = umeyama(p, g)
    aligned = s[:, None, None] * p @ r.transpose(-1, -2) + t[:, None]
    return ((aligned - g).norm(dim=-1).mean(-1)).numpy() / norm


def run_facezoo(model, lm2d: np.ndarray, repeats: int):
    x = torch.as_tensor(lm2d, dtype=torch.float64)
    fit = fit_landmarks(model, x)  # warm-up (and the result)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fit = fit_landmarks(model, x)
        times.append(time.perf_counter() - t)
    lm_idx = model.landmarks68.numpy()
    verts = fit.vertices.numpy()
    pred3d = verts[:, lm_idx]
    pred2d = fit.camera.project(torch.as_tensor(pred3d)).numpy()
    return pred2d, pred3d, fit.landmarks2d.numpy(), min(times) / len(lm2d)


def edge_topology(triangles: np.ndarray):
    """eos's ``EdgeTopology`` (1-based; a 0 face = mesh boundary) of a triangle list."""
    import eos

    edges: dict[tuple[int, int], list[int]] = {}
    for f, tri in enumerate(triangles):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            edges.setdefault((min(a, b), max(a, b)), []).append(f + 1)
    faces, verts = [], []
    for (a, b), fs in edges.items():
        faces.append([fs[0], fs[1]] if len(fs) > 1 else [0, fs[0]])
        verts.append([int(a) + 1, int(b) + 1])
    return eos.morphablemodel.EdgeTopology(faces, verts)


def run_eos(sfm: Path, lm2d: np.ndarray, sizes, keep_ids: list[int]):
    import eos

    model = eos.morphablemodel.load_model(str(sfm / "sfm_shape_3448.bin"))
    blend = eos.morphablemodel.load_blendshapes(str(sfm / "expression_blendshapes_3448.bin"))
    mm = eos.morphablemodel.MorphableModel(
        model.get_shape_model(), blend, color_model=eos.morphablemodel.PcaModel(),
        vertex_definitions=None, texture_coordinates=model.get_texture_coordinates(),
    )  # fmt: skip
    mapper = eos.core.LandmarkMapper(str(sfm / "ibug_to_sfm.txt"))
    topology = edge_topology(np.asarray(model.get_shape_model().get_triangle_list()))
    contour_lm = eos.fitting.ContourLandmarks.load(str(sfm / "ibug_to_sfm.txt"))
    contour = eos.fitting.ModelContour.load(str(sfm / "sfm_model_contours.json"))
    pred2d, pred3d, times = [], [], []
    for pts, (w, h) in zip(lm2d, sizes):
        lms = [eos.core.Landmark(str(i + 1), [float(p[0]), float(p[1])]) for i, p in enumerate(pts)]
        t = time.perf_counter()
        mesh, pose, _, _ = eos.fitting.fit_shape_and_pose(
            mm, lms, mapper, w, h, topology, contour_lm, contour
        )
        times.append(time.perf_counter() - t)
        v = np.asarray(mesh.vertices)[keep_ids]  # [L,3]
        mvp = np.asarray(pose.get_projection()) @ np.asarray(pose.get_modelview())
        clip = np.c_[v, np.ones(len(v))] @ mvp.T
        px = np.stack(((clip[:, 0] + 1) * w / 2, (1 - clip[:, 1]) * h / 2), -1)
        pred2d.append(px)
        pred3d.append(v)
    return np.stack(pred2d), np.stack(pred3d), float(np.mean(times))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=SHARED / "aflw2000_3d")
    p.add_argument("--sfm", type=Path, default=SHARED / "sfm")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tile", type=int, default=10, help="also time a batch of the photos tiled this often")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names, lm2d, lm3d, sizes = load_samples(args.data)
    norm = box_norm(lm2d)
    mapping = read_ibug_to_sfm(args.sfm / "ibug_to_sfm.txt")
    shared = [k - 1 for k in sorted(mapping) if k >= 18 or k == 9]  # iBUG 9 and 18-68 with an SFM vertex
    keep = np.array(shared)
    model = load_sfm(args.sfm).double()

    f2d, f3d, f_all, f_time = run_facezoo(model, lm2d, args.repeats)
    big_time = (
        run_facezoo(model, np.tile(lm2d, (args.tile, 1, 1)), args.repeats)[3] if args.tile > 1 else None
    )
    valid = model.landmark_valid.numpy()
    rows = {"facezoo": {
        "nme2d_%": float(100 * nme2d(f2d, lm2d, keep, norm).mean()),
        "nme3d_%": float(100 * nme3d(f3d, lm3d, keep, norm).mean()),
        "nme2d_jaw_%": float(100 * nme2d(f_all, lm2d, np.arange(17), norm).mean()),
        "nme2d_all_fitted_%": float(100 * nme2d(f_all, lm2d, valid | (np.arange(68) < 17), norm).mean()),
        "seconds_per_photo": f_time,
        f"seconds_per_photo_batch_{args.tile * len(names)}": big_time,
    }}  # fmt: skip
    try:
        e2d, e3d, e_time = run_eos(args.sfm, lm2d, sizes, [mapping[k + 1] for k in shared])
        rows["eos"] = {
            "nme2d_%": float(100 * nme2d(e2d, lm2d[:, keep], np.arange(len(keep)), norm).mean()),
            "nme3d_%": float(100 * nme3d(e3d, lm3d[:, keep], np.arange(len(keep)), norm).mean()),
            "seconds_per_photo": e_time,
        }
    except ImportError:
        print("eos is not installed (pip install -e '.[bench]' adds eos-py): facezoo's numbers only")
    print(f"\nSFM fitted to {len(names)} AFLW2000-3D photos, ground-truth 68 landmarks "
          f"({len(keep)} shared points; NME over sqrt(w h))")  # fmt: skip
    print(f"  {'method':8s} {'2D NME %':>9s} {'3D NME %':>9s} {'ms/photo':>9s}")
    for name, r in rows.items():
        print(f"  {name:8s} {r['nme2d_%']:9.2f} {r['nme3d_%']:9.2f} {1000 * r['seconds_per_photo']:9.2f}")
    if big_time is not None:
        print(f"  facezoo, the photos tiled into a batch of {args.tile * len(names)}: "
              f"{1000 * big_time:.2f} ms/photo")  # fmt: skip
    print(f"  facezoo jaw (moving contour) 2D NME: {rows['facezoo']['nme2d_jaw_%']:.2f} %; "
          f"all {int((valid | (np.arange(68) < 17)).sum())} fitted points: "
          f"{rows['facezoo']['nme2d_all_fitted_%']:.2f} %")  # fmt: skip
    result = {"photos": names, "shared_landmarks": [int(k) + 1 for k in keep], "threads": args.threads,
              "results": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"  JSON: {args.out}")
    return result


if __name__ == "__main__":
    main()

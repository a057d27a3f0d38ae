"""Shared steps of the scan-based protocols (MICC RMSE, Florence NME3D): crop, align, nearest points.

Private helper of :mod:`facezoo.metrics.mesh_rmse` and :mod:`facezoo.metrics.nme3d_florence`; numpy float64
on the CPU (open3d), one sample at a time.
"""

from __future__ import annotations

import numpy as np
import torch

from facezoo.geometry.icp import centroid_init, similarity_icp, similarity_matrix, umeyama
from facezoo.geometry.mesh import vertex_normals as mesh_vertex_normals


def to_numpy64(name: str, x, shape_tail: tuple[int, ...] = (3,), ndim: int = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.ndim != ndim or tuple(x.shape[ndim - len(shape_tail) :]) != shape_tail:
        want = "[" + ",".join(["N"] * (ndim - len(shape_tail)) + [str(s) for s in shape_tail]) + "]"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    return np.array(x, dtype=np.float64)


def crop_scan(
    points: np.ndarray,
    nose_tip: np.ndarray | None,
    radius: float | None,
    forehead_cut: float | None = None,
) -> np.ndarray:
    """Scan points within ``radius`` of the nose tip and not above ``nose_y + forehead_cut`` (+y up)."""
    keep = np.ones(len(points), dtype=bool)
    if radius is not None or forehead_cut is not None:
        if nose_tip is None:
            raise ValueError("nose_tip: required to crop the scan (crop_radius / forehead_cut are set)")
        if radius is not None:
            keep &= np.linalg.norm(points - nose_tip, axis=1) <= radius
        if forehead_cut is not None:
            keep &= points[:, 1] <= nose_tip[1] + forehead_cut
    out = points[keep]
    if len(out) < 3:
        raise ValueError(f"target_points: only {len(out)} points left after cropping around the nose tip")
    return out


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray | None) -> np.ndarray:
    """Unit vertex normals ``[V,3]`` float64: from the triangles (facezoo's one vertex-normal function,
    :func:`facezoo.geometry.mesh.vertex_normals`, area-weighted) or, for a bare point cloud, 30-NN PCA."""
    if triangles is not None:
        v = torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float64))[None]
        tri = torch.from_numpy(np.asarray(triangles, dtype=np.int64))
        return mesh_vertex_normals(v, tri)[0].numpy()
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(vertices))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
    return np.asarray(pc.normals).copy()


def align_prediction(
    pred: np.ndarray,
    scan: np.ndarray,
    *,
    pred_landmarks,
    scan_landmarks,
    stages: tuple[str, ...],
    max_correspondence_distance: float,
    max_iterations: int,
    pred_normals: np.ndarray | None,
    scan_full: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Bring the prediction into the scan's frame with a similarity; returns ``(aligned pred [V,3], info)``.

    ICP runs from the (cropped) scan to the prediction, because every scan point has a true counterpart on a
    predicted face while the prediction usually extends beyond the crop (ears, neck); matching the other
    way would pull the prediction's extra parts onto the crop boundary. The scan→prediction similarity is
    then inverted, so that distances are measured in the scan's units (mm). Initial alignment: Umeyama on
    the corresponding landmarks when both are given, else centroids + RMS radii of the whole scan
    (``scan_full``, before the nose-tip crop: it covers about what a predicted face covers, the crop does
    not) and the whole prediction.
    """
    if (pred_landmarks is None) != (scan_landmarks is None):
        raise ValueError("pred_landmarks/target_landmarks: give both or neither")
    if pred_landmarks is not None:
        pred_landmarks = to_numpy64("pred_landmarks", pred_landmarks)
        scan_landmarks = to_numpy64("target_landmarks", scan_landmarks)
        if pred_landmarks.shape != scan_landmarks.shape or len(pred_landmarks) < 3:
            raise ValueError(
                "pred_landmarks/target_landmarks: expected matching [K,3] with K >= 3, got "
                f"{pred_landmarks.shape} and {scan_landmarks.shape}"
            )
        R0, t0, s0 = umeyama(scan_landmarks, pred_landmarks)
        init = similarity_matrix(R0, t0, s0)
    else:
        init = centroid_init(scan if scan_full is None else scan_full, pred)
    R, t, s, info = similarity_icp(
        scan,
        pred,
        init=init,
        stages=stages,
        max_correspondence_distance=max_correspondence_distance,
        max_iterations=max_iterations,
        tolerance=1e-10,
        target_normals=pred_normals if "plane" in stages else None,
    )
    aligned = (pred - t) @ R / s  # inverse of  s R x + t
    return aligned, info


def nearest_vertices(points: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and distance of the nearest of ``points [V,3]`` for each of ``queries [N,3]`` (open3d)."""
    import open3d as o3d

    nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(points))
    nns.knn_index()
    idx, d2 = nns.knn_search(o3d.core.Tensor(queries), 1)
    return idx.numpy()[:, 0].astype(np.int64), np.sqrt(d2.numpy()[:, 0])


def as_list(name: str, x, n: int | None) -> list:
    """Per-sample items of a batched tensor or a list (``None`` -> ``n`` Nones)."""
    if x is None:
        return [None] * (n or 0)
    if isinstance(x, list | tuple):
        items = list(x)
    elif isinstance(x, torch.Tensor | np.ndarray) and x.ndim >= 2 and (n is None or x.shape[0] == n):
        items = list(x)
    else:
        raise ValueError(
            f"{name}: expected a list or a batched tensor with {n} items, got {type(x).__name__}"
        )
    if n is not None and len(items) != n:
        raise ValueError(f"{name}: expected {n} items, got {len(items)}")
    return items

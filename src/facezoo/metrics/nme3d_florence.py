"""Florence NME3D (PRN / 3DDFA-style): nearest-point error after ICP, over the scan's 3D box diagonal.

Used by PRN and, after it, MMFace's Fig. 4 ("we employ the ICP to align our results to the ground truth as
done in [PRN]") on MICC Florence, whose scans have no vertex correspondence with any model. Per sample:

1. optional crop of the scan around the nose tip (``crop_radius``, ``None`` = whole scan, the default);
2. similarity alignment of the prediction to the scan: Umeyama on corresponding landmarks when given, else
   centroids + RMS radii, then open3d point-to-point ICP with isotropic scale (scan → prediction, inverted;
   same choices as :mod:`facezoo.metrics.mesh_rmse`, cut-off ``max_correspondence_distance`` = 10 mm);
3. for every scan point, the Euclidean distance to the nearest predicted vertex (point-to-point);
4. mean distance divided by the diagonal of the (cropped) scan's axis-aligned 3D bounding box.

It differs from MMFace's Eq. 11 NME3D (:mod:`facezoo.metrics.nme3d`: known correspondence, z-shift only)
and from the MICC RMSE (:mod:`facezoo.metrics.mesh_rmse`: point-to-plane, RMS, in mm). Fraction, not %.
"""

from __future__ import annotations

import numpy as np
import torch

from facezoo.metrics._mean_std import MeanStdMetric
from facezoo.metrics._scan import align_prediction, as_list, crop_scan, nearest_vertices, to_numpy64

__all__ = ["FlorenceNME3D", "nme3d_florence"]


def nme3d_florence(
    pred_vertices: torch.Tensor | np.ndarray,
    target_points: torch.Tensor | np.ndarray,
    nose_tip: torch.Tensor | np.ndarray | None = None,
    *,
    pred_landmarks: torch.Tensor | np.ndarray | None = None,
    target_landmarks: torch.Tensor | np.ndarray | None = None,
    crop_radius: float | None = None,
    align: bool = True,
    max_correspondence_distance: float = 10.0,
    max_iterations: int = 100,
) -> torch.Tensor:
    """Florence NME3D of one prediction ``[V,3]`` against one scan ``[N,3]`` (same units, e.g. mm).

    Args:
        pred_vertices: ``[V,3]`` predicted vertices.
        target_points: ``[N,3]`` ground-truth scan points.
        nose_tip: ``[3]`` scan nose tip, needed with ``crop_radius``.
        pred_landmarks, target_landmarks: ``[K,3]`` corresponding points (K >= 3) for the initial alignment.
        crop_radius: keep scan points within this distance of the nose tip (``None``: all).
        align: run the alignment (``False``: compare as given).
        max_correspondence_distance: ICP correspondence cut-off (scan units).
        max_iterations: ICP iteration cap.

    Returns:
        Scalar float64 tensor.

    Example:
        >>> g = torch.rand(500, 3, dtype=torch.float64) * 100
        >>> float(nme3d_florence(g, g, align=False))
        0.0
    """
    V = to_numpy64("pred_vertices", pred_vertices)
    P_full = to_numpy64("target_points", target_points)
    nose = None if nose_tip is None else to_numpy64("nose_tip", nose_tip, (3,), ndim=1)
    P = crop_scan(P_full, nose, crop_radius)
    if align:
        V, _ = align_prediction(
            V,
            P,
            pred_landmarks=pred_landmarks,
            scan_landmarks=target_landmarks,
            scan_full=P_full,
            stages=("point",),
            max_correspondence_distance=max_correspondence_distance,
            max_iterations=max_iterations,
            pred_normals=None,
        )
    _, d = nearest_vertices(V, P)
    diag = float(np.linalg.norm(P.max(0) - P.min(0)))
    device = pred_vertices.device if isinstance(pred_vertices, torch.Tensor) else None
    return torch.tensor(float(d.mean()) / diag, dtype=torch.float64, device=device)


class FlorenceNME3D(MeanStdMetric):
    """Mean ± std over samples of :func:`nme3d_florence`.

    ``update(pred_vertices, target_points, nose_tip=None, pred_landmarks=None, target_landmarks=None)`` with
    batched tensors or lists (scans differ in size); ``compute()`` →
    ``{"nme3d_florence": mean, "nme3d_florence_std": population std}``.
    """

    name = "nme3d_florence"

    def __init__(
        self,
        crop_radius: float | None = None,
        max_correspondence_distance: float = 10.0,
        max_iterations: int = 100,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.options = {
            "crop_radius": crop_radius,
            "max_correspondence_distance": max_correspondence_distance,
            "max_iterations": max_iterations,
        }

    def update(self, pred_vertices, target_points, nose_tip=None, pred_landmarks=None, target_landmarks=None):
        preds = as_list("pred_vertices", pred_vertices, None)
        n = len(preds)
        items = zip(
            preds,
            as_list("target_points", target_points, n),
            as_list("nose_tip", nose_tip, n),
            as_list("pred_landmarks", pred_landmarks, n),
            as_list("target_landmarks", target_landmarks, n),
        )
        for v, p, c, a, b in items:
            self.accumulate(nme3d_florence(v, p, c, pred_landmarks=a, target_landmarks=b, **self.options))

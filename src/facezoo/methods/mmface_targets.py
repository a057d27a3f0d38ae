"""MMFace's ground truth from a batch: the weak-perspective pose ``(f̂, R̂, t̂)`` and the posed mesh.

MMFace's pose is a weak-perspective camera (Eq. 2). 300W-LP / AFLW2000-3D give one (``params["pose"]``,
3DDFA's ``Pose_Para`` moved into the crop by the datamodule: :func:`facezoo.geometry.camera_from_300wlp`).
:class:`~facezoo.datamodules.SyntheticFaces` renders with a perspective camera (``params["angles"]``,
``"translation"``); its weak-perspective ground truth keeps the rotation ``R̂`` of the angles and fits the
scale and 2D translation in closed form to the ground-truth 2D landmarks (:func:`fit_weak_perspective`: the
least-squares ``(s, t)`` for a known ``R``), so that ``f̂ P R̂ S + t̂`` reproduces the image's landmarks up to
the perspective effects of a 1 m camera.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from facezoo.geometry import WeakPerspective, camera_from_300wlp, euler_to_matrix

__all__ = ["fit_weak_perspective", "ground_truth_camera", "ground_truth_vertices"]


def fit_weak_perspective(points: Tensor, rotation: Tensor, target: Tensor) -> WeakPerspective:
    """Least-squares scale and 2D translation of a weak-perspective camera with a known rotation.

    Minimises ``Σ_i ||(s w_ix + t_x, t_y - s w_iy) - u_i||²`` with ``w = R p`` (a linear problem in ``(s,
    t_x, t_y)``): ``s = Σ (w̃_x ũ_x - w̃_y ũ_y) / Σ (w̃_x² + w̃_y²)`` over centred values, ``t = ū - s (w̄_x,
    -w̄_y)``.

    Args:
        points: ``[B,N,3]`` model-space points (mm). rotation: ``[B,3,3]``. target: ``[B,N,2]`` pixels.

    Example:
        >>> cam = WeakPerspective(torch.tensor([0.7]), torch.eye(3)[None], torch.tensor([[30.0, 20.0]]))
        >>> p = torch.randn(1, 10, 3)
        >>> fit = fit_weak_perspective(p, torch.eye(3)[None], cam.project(p))
        >>> round(float(fit.scale), 4), [round(v, 3) for v in fit.t2d[0].tolist()]
        (0.7, [30.0, 20.0])
    """
    if points.ndim != 3 or target.ndim != 3 or points.shape[:2] != target.shape[:2]:
        raise ValueError(f"points [B,N,3] and target [B,N,2] must match, got {tuple(points.shape)}, "
                         f"{tuple(target.shape)}")  # fmt: skip
    w = points @ rotation.transpose(-1, -2)
    wx, wy = w[..., 0], w[..., 1]
    wxc, wyc = wx - wx.mean(1, keepdim=True), wy - wy.mean(1, keepdim=True)
    u = target.to(w)
    uc = u - u.mean(1, keepdim=True)
    s = (wxc * uc[..., 0] - wyc * uc[..., 1]).sum(1) / (wxc**2 + wyc**2).sum(1).clamp_min(1e-12)
    t = u.mean(1) - s[:, None] * torch.stack((wx.mean(1), -wy.mean(1)), -1)
    return WeakPerspective(s, rotation, t)


def ground_truth_vertices(flat: Mapping[str, Any], model) -> Tensor:
    """``params["vertices"]`` when given, else ``model(params["id"], params["exp"])`` ``[N,V,3]``."""
    params = flat.get("params") or {}
    if "vertices" in params:
        return params["vertices"]
    if "id" in params and "exp" in params:
        return model(params["id"], params["exp"])
    raise ValueError(
        "MMFace needs the ground-truth shape: params['vertices'] or params['id'] and params['exp']; "
        f"the batch has params {sorted(params)}"
    )


def ground_truth_camera(flat: Mapping[str, Any], model, image_size: int, vertices: Tensor | None = None):
    """The ground-truth :class:`WeakPerspective` of each row of a flat batch (module docstring): from
    ``params["pose"]`` (300W-LP ``Pose_Para`` in crop pixels), or fitted to ``landmarks68`` with the rotation
    of ``params["angles"]`` (synthetic faces)."""
    params = flat.get("params") or {}
    if "pose" in params:
        pose = params["pose"]
        cam = camera_from_300wlp(pose.double(), image_size)
        return cam.to(dtype=pose.dtype if pose.is_floating_point() else torch.float32)
    if "angles" in params and "landmarks68" in flat:
        verts = ground_truth_vertices(flat, model) if vertices is None else vertices
        rotation = euler_to_matrix(params["angles"].to(verts), "zyx")
        return fit_weak_perspective(model.landmarks(verts), rotation, flat["landmarks68"].to(verts))
    raise ValueError(
        "MMFace needs a ground-truth pose: params['pose'] (300W-LP Pose_Para) or params['angles'] with "
        f"landmarks68 (synthetic faces); the batch has params {sorted(params)} and keys {sorted(flat)}"
    )

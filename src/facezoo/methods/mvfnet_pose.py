"""MVF-Net's per-view pose ``P = {f, alpha, beta, gamma, t_x, t_y}`` (mvfnet.txt Eq. 2) <-> a weak-perspective
camera, and the ground-truth pose of a labelled batch.

The network's 6 outputs are normalised so that zero is a reasonable start and all are of order 1 (§4.2: "pose
parameters ... are normalized"; the exact normalisation is not given, our choice):

* ``scale = s0 (1 + f)`` pixels per mm, ``s0`` the method's reference scale (the mean face's landmark box
  fills ``1 / 1.5`` of the crop);
* ``R = euler_to_matrix((pitch, yaw, roll), convention)`` (radians; facezoo's ``"zyx"``: ``R = Rz Ry Rx``);
* ``t2d = S (0.5 + t_x, 0.5 + t_y)`` pixels, ``S`` the crop side (zero = the crop centre).

Ground truth (:func:`ground_truth_camera`): a dataset's packed 300W-LP ``params["pose"] [7]`` (already in
crop pixels) through :func:`facezoo.geometry.camera_from_300wlp`; otherwise, when the batch has the
ground-truth mesh (``params["vertices"]``) and ``landmarks68``, the least-squares weak-perspective camera of
the mesh's 68 landmarks onto the 2D landmarks (:func:`fit_weak_perspective`; for the synthetic data's 1 m
perspective camera this is its first-order weak-perspective approximation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from facezoo.geometry.cameras import WeakPerspective
from facezoo.geometry.pose_300wlp import camera_from_300wlp
from facezoo.geometry.rotations import euler_to_matrix, matrix_to_euler

#: crop side / mean-face landmark box side at the reference scale ``s0``.
BOX_RATIO = 1.5


def reference_scale(landmarks3d: Tensor, image_size: int) -> float:
    """``s0``: pixels per mm at which the landmark box of ``landmarks3d [68,3]`` (the mean face) spans
    ``image_size / BOX_RATIO`` pixels.

    Example:
        >>> lm = torch.tensor([[-50.0, -50.0, 0.0], [50.0, 50.0, 0.0]])
        >>> reference_scale(lm, 150)
        1.0
    """
    extent = (landmarks3d[:, :2].amax(0) - landmarks3d[:, :2].amin(0)).max()
    return float(image_size / (BOX_RATIO * extent.clamp_min(1e-6)))


def decode_pose(pose: Tensor, s0: float, image_size: int, convention: str = "zyx") -> WeakPerspective:
    """``pose [N,6] = (f, pitch, yaw, roll, t_x, t_y)`` (normalised, module docstring) -> a camera of batch N.

    Example:
        >>> cam = decode_pose(torch.zeros(1, 6), 2.0, 64)
        >>> cam.project(torch.tensor([[[1.0, 1.0, 0.0]]]))
        tensor([[[34., 30.]]])
    """
    if not isinstance(pose, Tensor) or pose.ndim != 2 or pose.shape[-1] != 6:
        raise ValueError(
            f"pose: expected [N,6] (f, pitch, yaw, roll, t_x, t_y), got {getattr(pose, 'shape', pose)}"
        )
    scale = s0 * (1.0 + pose[:, 0])
    rotation = euler_to_matrix(pose[:, 1:4], convention)
    return WeakPerspective(scale, rotation, image_size * (0.5 + pose[:, 4:6]))


def encode_pose(camera: WeakPerspective, s0: float, image_size: int, convention: str = "zyx") -> Tensor:
    """Inverse of :func:`decode_pose`: the normalised ``[N,6]`` vector of a weak-perspective camera.

    Example:
        >>> p = torch.tensor([[0.1, 0.2, -0.3, 0.05, 0.02, -0.01]])
        >>> torch.allclose(encode_pose(decode_pose(p, 1.5, 64), 1.5, 64), p, atol=1e-6)
        True
    """
    if not isinstance(camera, WeakPerspective):
        raise TypeError(f"camera: expected a WeakPerspective, got {type(camera).__name__}")
    f = camera.scale / s0 - 1.0
    angles = matrix_to_euler(camera.rotation, convention)
    return torch.cat((f[:, None], angles, camera.t2d / image_size - 0.5), -1)


def fit_weak_perspective(points3d: Tensor, points2d: Tensor) -> WeakPerspective:
    """Least-squares weak-perspective camera mapping ``points3d [N,K,3]`` (mm) onto ``points2d [N,K,2]``
    (pixels, y down): an affine 2x4 fit, its 2x3 part made a scaled rotation through the SVD (scale = mean
    singular value), the third row the cross product. Exact for weak-perspective data.

    Example:
        >>> cam = WeakPerspective(torch.tensor([1.5]), euler_to_matrix(torch.tensor([[0.1, 0.4, -0.2]])),
        ...                       torch.tensor([[30.0, 40.0]]))
        >>> pts = torch.randn(1, 20, 3) * 40
        >>> fit = fit_weak_perspective(pts, cam.project(pts))
        >>> torch.allclose(fit.project(pts), cam.project(pts), atol=1e-3)
        True
    """
    if points3d.ndim != 3 or points3d.shape[-1] != 3 or points2d.shape != (*points3d.shape[:2], 2):
        raise ValueError(
            f"fit_weak_perspective: expected [N,K,3] and [N,K,2], got {tuple(points3d.shape)}, "
            f"{tuple(points2d.shape)}"
        )
    p3, p2 = points3d.double(), points2d.double()
    p2 = torch.stack((p2[..., 0], -p2[..., 1]), -1)  # y up, as the view space
    c3, c2 = p3.mean(1, keepdim=True), p2.mean(1, keepdim=True)
    a = torch.linalg.lstsq(p3 - c3, p2 - c2).solution.transpose(1, 2)  # [N,2,3]: p2 - c2 = a (p3 - c3)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    scale = s.mean(-1)
    rows = u @ vh  # nearest matrix with orthonormal rows
    rotation = torch.cat((rows, torch.linalg.cross(rows[:, 0], rows[:, 1])[:, None]), 1)
    t = c2[:, 0] - scale[:, None] * (c3[:, 0, None] @ rows.transpose(1, 2))[:, 0]
    t2d = torch.stack((t[:, 0], -t[:, 1]), -1)
    dtype = points3d.dtype
    return WeakPerspective(scale.to(dtype), rotation.to(dtype), t2d.to(dtype))


def ground_truth_camera(flat: Mapping[str, Any], morphable, image_size: int) -> WeakPerspective | None:
    """The ground-truth camera of each row of a flat batch (module docstring), or ``None`` when the batch
    has neither a 300W-LP ``params["pose"]`` nor ``params["vertices"]`` + ``landmarks68``."""
    params = flat.get("params")
    if not isinstance(params, Mapping):
        return None
    pose = params.get("pose")
    if isinstance(pose, Tensor) and pose.shape[-1] == 7:
        return camera_from_300wlp(pose.float(), image_size)
    verts, lm = params.get("vertices"), flat.get("landmarks68")
    if isinstance(verts, Tensor) and isinstance(lm, Tensor) and verts.shape[1] == morphable.n_vertices:
        with torch.no_grad():
            return fit_weak_perspective(morphable.landmarks(verts.float()), lm.float())
    return None


__all__ = [
    "BOX_RATIO",
    "decode_pose",
    "encode_pose",
    "fit_weak_perspective",
    "ground_truth_camera",
    "reference_scale",
]

"""300W-LP / AFLW2000-3D ``Pose_Para`` <-> :class:`~facezoo.geometry.cameras.WeakPerspective`.

``Pose_Para = [pitch, yaw, roll, tx, ty, tz, scale]`` (radians; 3DDFA's fitting code). 3DDFA projects the raw
BFM vertices ``v_raw`` (µm-scale units: the 3DDFA crop's mean ``u_shp`` spans about ±90 000 in x, so
``v_mm = v_raw * 1e-3``) as ``p = scale * R_3ddfa(pitch, yaw, roll) @ v_raw + (tx, ty, tz)`` with
``R_3ddfa = (Rz Ry Rx)^T`` (:func:`~facezoo.geometry.rotations.euler_to_matrix` ``convention="3ddfa"``), then
flips the y-up result into the image with 3DDFA's ``image_y = height + 1 - p_y`` (``std_size + 1 - y`` in
3DDFA's reconstruct_vertex). The real AFLW2000-3D ``pt3d_68`` confirm this within the residual of the
truncated model (tests/geometry/test_pose_300wlp.py): the ``+1`` removes a mean y bias of about one pixel.

So in facezoo's convention (model space = raw BFM * 1e-3 mm with the raw BFM origin, no recentring):
``WeakPerspective(scale = 1000 * scale_raw, R = R_3ddfa, t2d = (tx, height + 1 - ty))``; ``project()`` then
reproduces the stored ``pt2d`` / ``pt3d_68[:2]`` values (the dataset's own pixel coordinates). ``tz`` and the
third row of ``pt3d_68`` (``= scale * (R v)_z + tz``) do not affect the 2D projection.

Positive 300W-LP yaw turns the nose to the image left (the subject's right cheek faces the camera).
"""

from __future__ import annotations

import math

import torch

from facezoo.geometry.cameras import WeakPerspective
from facezoo.geometry.rotations import euler_to_matrix, matrix_to_euler

__all__ = ["RAW_TO_MM", "camera_from_300wlp", "pose_300wlp_from_camera", "yaw_degrees"]

#: BFM raw units (as in 3DDFA / 300W-LP) to millimetres.
RAW_TO_MM = 1e-3


def _pose(pose_para, name: str = "pose_para") -> tuple[torch.Tensor, bool]:
    p = torch.as_tensor(pose_para)
    if not p.is_floating_point():
        p = p.double()
    if p.ndim == 2 and p.shape[0] == 1 and p.shape[1] == 7:
        return p, False  # MATLAB's (1,7) row: an unbatched pose kept as a batch of 1
    if p.ndim == 1 and p.shape[0] == 7:
        return p[None], True
    if p.ndim == 2 and p.shape[1] == 7:
        return p, False
    raise ValueError(
        f"{name} must have shape [7] or [B,7] (pitch, yaw, roll, tx, ty, tz, scale), got {tuple(p.shape)}"
    )


def camera_from_300wlp(pose_para, image_height: float, y_offset: float = 1.0) -> WeakPerspective:
    """The facezoo camera of a 300W-LP / AFLW2000-3D ``Pose_Para`` for a model in mm (raw BFM * 1e-3).

    Args:
        pose_para: ``[7]`` or ``[B,7]`` (also MATLAB's ``(1,7)``): pitch, yaw, roll (rad), tx, ty, tz, scale.
        image_height: image height in pixels (450 for AFLW2000-3D and 300W-LP).
        y_offset: 3DDFA's ``height + 1 - y`` flip (``1``); use ``0`` for face3d's posmap variant, which
            additionally subtracts 1 (``h - y - 1``, i.e. ``y_offset = -1``).

    Returns:
        ``WeakPerspective`` with batch ``B`` (1 for an unbatched pose), on the pose's device and dtype.

    Example:
        >>> cam = camera_from_300wlp(torch.tensor([0.0, 0.0, 0.0, 200.0, 210.0, 0.0, 1e-3]), 450)
        >>> cam.project(torch.zeros(1, 1, 3))
        tensor([[[200., 241.]]])
    """
    p, _ = _pose(pose_para)
    rotation = euler_to_matrix(p[:, :3], "3ddfa")
    scale = p[:, 6] / RAW_TO_MM
    t2d = torch.stack((p[:, 3], float(image_height) + y_offset - p[:, 4]), dim=-1)
    return WeakPerspective(scale, rotation, t2d)


def pose_300wlp_from_camera(
    camera: WeakPerspective, image_height: float, tz: torch.Tensor | float = 0.0, y_offset: float = 1.0
) -> torch.Tensor:
    """Inverse of :func:`camera_from_300wlp`: ``[B,7]`` ``Pose_Para`` (``tz`` is not recoverable: given)."""
    if not isinstance(camera, WeakPerspective):
        raise TypeError(f"camera must be a WeakPerspective, got {type(camera).__name__}")
    angles = matrix_to_euler(camera.rotation, "3ddfa")
    tx = camera.t2d[:, 0]
    ty = float(image_height) + y_offset - camera.t2d[:, 1]
    tz = torch.as_tensor(tz, dtype=tx.dtype, device=tx.device).expand_as(tx)
    return torch.cat((angles, torch.stack((tx, ty, tz, camera.scale * RAW_TO_MM), dim=-1)), dim=-1)


def yaw_degrees(pose_para) -> torch.Tensor:
    """Yaw of a ``Pose_Para`` in degrees (``[7] -> []``, ``[B,7] -> [B]``), the value AFLW2000-3D's yaw
    buckets (0-30, 30-60, 60-90 on ``|yaw|``) use. Positive = nose toward the image left."""
    p, unbatched = _pose(pose_para)
    yaw = p[:, 1] * (180.0 / math.pi)
    return yaw[0] if unbatched else yaw

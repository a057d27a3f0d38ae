"""Rotation parameterisations: Euler angles, quaternions, axis-angle and the 6D representation.

All functions are batched over leading dimensions, differentiable, and create tensors on the input's
device and dtype. Matrices act on column vectors: ``v' = R @ v``.

Euler conventions (angles are always ``(pitch, yaw, roll)`` = rotations about x, y, z, in radians, and the
elementary matrices are the standard right-handed ones, e.g. ``Rx(a) = [[1,0,0],[0,c,-s],[0,s,c]]``):

- ``"zyx"`` (facezoo's default; aliases ``"facezoo"``, ``"face3d"``, ``"deep3d"``):
  ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` = scipy ``Rotation.from_euler("xyz", angles)`` (extrinsic x, y, z).
  This is face3d's ``angle2matrix`` (which takes degrees; we take radians). In facezoo's model space
  (+y up, +z toward the viewer) positive pitch turns the nose down (looking down), positive yaw turns the nose
  to the subject's left (image right) and positive roll tilts the top of the head to the subject's right.
  Deep3DFace's ``compute_rotation(angles)`` returns ``(Rz Ry Rx)^T`` and applies it to *row* vectors
  (``points @ rot``), i.e. it applies exactly our ``R = Rz Ry Rx`` to column vectors: Deep3DFace's angles
  are facezoo angles unchanged, and ``deep3d_row_matrix`` gives their transposed matrix when needed.
- ``"3ddfa"``: 3DDFA's MATLAB ``RotationMatrix`` / face3d's ``angle2matrix_3ddfa``:
  ``R = Rx(-pitch) @ Ry(-yaw) @ Rz(-roll) = (Rz(roll) Ry(yaw) Rx(pitch))^T``. 300W-LP and AFLW2000-3D's
  ``Pose_Para`` use it (verified against the real samples in tests/geometry/test_pose_300wlp.py). Positive
  300W-LP yaw therefore turns the nose to the image *left*.

Quaternions are ``(w, x, y, z)`` (scalar first, kornia's order), converted with
``kornia.geometry.conversions``; the 6D representation is Zhou et al. (CVPR 2019) with PyTorch3D's layout
(the first two *rows* of R).
"""

from __future__ import annotations

import torch
from kornia.geometry import conversions as _kc

__all__ = [
    "EULER_CONVENTIONS",
    "rot_x",
    "rot_y",
    "rot_z",
    "euler_to_matrix",
    "matrix_to_euler",
    "deep3d_row_matrix",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
]

_ALIASES = {"zyx": "zyx", "facezoo": "zyx", "face3d": "zyx", "deep3d": "zyx", "3ddfa": "3ddfa"}
#: Accepted names for ``convention`` in :func:`euler_to_matrix` / :func:`matrix_to_euler`.
EULER_CONVENTIONS = tuple(_ALIASES)


def _check_last(x: torch.Tensor, n: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have shape [..., {n}], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _check_matrix(r: torch.Tensor, name: str = "matrix") -> None:
    if not isinstance(r, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(r).__name__}")
    if r.ndim < 2 or tuple(r.shape[-2:]) != (3, 3):
        raise ValueError(f"{name} must have shape [..., 3, 3], got {tuple(r.shape)}")
    if not r.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {r.dtype}")


def _convention(convention: str) -> str:
    try:
        return _ALIASES[convention]
    except KeyError:
        raise ValueError(f"convention must be one of {EULER_CONVENTIONS}, got {convention!r}") from None


def _elementary(angle: torch.Tensor, axis: int) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = (one, zero, zero, zero, c, -s, zero, s, c)
    elif axis == 1:
        rows = (c, zero, s, zero, one, zero, -s, zero, c)
    else:
        rows = (c, -s, zero, s, c, zero, zero, zero, one)
    return torch.stack(rows, dim=-1).reshape(*angle.shape, 3, 3)


def rot_x(angle: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about +x by ``angle`` rad: ``[...] -> [..., 3, 3]``."""
    return _elementary(torch.as_tensor(angle), 0)


def rot_y(angle: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about +y by ``angle`` rad: ``[...] -> [..., 3, 3]``."""
    return _elementary(torch.as_tensor(angle), 1)


def rot_z(angle: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about +z by ``angle`` rad: ``[...] -> [..., 3, 3]``."""
    return _elementary(torch.as_tensor(angle), 2)


def euler_to_matrix(angles: torch.Tensor, convention: str = "zyx") -> torch.Tensor:
    """Euler angles ``(pitch, yaw, roll)`` in radians ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``.

    See the module docstring for the conventions (``"zyx"``: ``Rz(roll) Ry(yaw) Rx(pitch)``; ``"3ddfa"``: its
    transpose).

    Example:
        >>> R = euler_to_matrix(torch.tensor([[0.0, 0.3, 0.0]]))  # yaw 0.3 rad
        >>> (R @ torch.tensor([0.0, 0.0, 1.0]))[0, 0] > 0  # the nose (+z) moves to +x
        tensor(True)
    """
    _check_last(angles, 3, "angles")
    conv = _convention(convention)
    r = rot_z(angles[..., 2]) @ rot_y(angles[..., 1]) @ rot_x(angles[..., 0])
    return r if conv == "zyx" else r.transpose(-1, -2)


def matrix_to_euler(matrix: torch.Tensor, convention: str = "zyx") -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> Euler angles ``(pitch, yaw, roll)`` ``[..., 3]`` (radians).

    Inverse of :func:`euler_to_matrix`; yaw is returned in ``[-pi/2, pi/2]`` and pitch, roll in
    ``(-pi, pi]``. At gimbal lock (``|yaw| = pi/2``) the split between pitch and roll is arbitrary.
    """
    _check_matrix(matrix)
    r = matrix if _convention(convention) == "zyx" else matrix.transpose(-1, -2)
    # R = Rz Ry Rx: R[2,0] = -sin(yaw), R[2,1] = cos(yaw) sin(pitch), R[2,2] = cos(yaw) cos(pitch),
    # R[1,0] = sin(roll) cos(yaw), R[0,0] = cos(roll) cos(yaw).
    pitch = torch.atan2(r[..., 2, 1], r[..., 2, 2])
    yaw = torch.atan2(-r[..., 2, 0], torch.sqrt(r[..., 0, 0] ** 2 + r[..., 1, 0] ** 2))
    roll = torch.atan2(r[..., 1, 0], r[..., 0, 0])
    return torch.stack((pitch, yaw, roll), dim=-1)


def deep3d_row_matrix(angles: torch.Tensor) -> torch.Tensor:
    """The matrix Deep3DFace's ``compute_rotation`` returns, ``(Rz Ry Rx)^T`` ``[..., 3, 3]``.

    Deep3DFace transforms row vectors, ``points @ rot``; this equals ``(euler_to_matrix(angles) @ p^T)^T``,
    so facezoo code uses :func:`euler_to_matrix` with the same angles. Provided for porting weights and tests.
    """
    return euler_to_matrix(angles, "zyx").transpose(-1, -2)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(w, x, y, z)`` ``[..., 4]`` -> rotation matrices ``[..., 3, 3]``.

    The quaternion is normalised first (kornia), so any non-zero 4-vector is a valid input; ``q`` and ``-q``
    give the same rotation.
    """
    _check_last(quaternion, 4, "quaternion")
    return _kc.quaternion_to_rotation_matrix(quaternion)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> unit quaternions ``(w, x, y, z)`` ``[..., 4]`` with ``w >= 0``."""
    _check_matrix(matrix)
    q = _kc.rotation_matrix_to_quaternion(matrix)
    # canonical hemisphere (kornia may return either sign)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation vectors (axis * angle in radians) ``[..., 3]`` -> rotation matrices ``[..., 3, 3]``."""
    _check_last(axis_angle, 3, "axis_angle")
    shape = axis_angle.shape[:-1]
    return _kc.axis_angle_to_rotation_matrix(axis_angle.reshape(-1, 3)).reshape(*shape, 3, 3)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> rotation vectors ``[..., 3]`` (angle in ``[0, pi]``)."""
    _check_matrix(matrix)
    return _kc.quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D rotation representation ``[..., 6]`` -> rotation matrices ``[..., 3, 3]`` (Gram-Schmidt).

    The two 3-vectors become the first two rows of R (PyTorch3D's layout); the third row is their cross
    product, so the result is always a proper rotation.
    """
    _check_last(d6, 6, "d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[..., 3, 3]`` -> 6D representation ``[..., 6]`` (the first two rows)."""
    _check_matrix(matrix)
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)

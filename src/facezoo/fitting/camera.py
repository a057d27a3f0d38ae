"""Cameras for fitting: the linear initial pose, and moving a camera between a photo and a crop of it.

* :func:`affine_camera_init` is the classic linear start (Hartley & Zisserman's Gold Standard affine camera,
  as eos's ``estimate_orthographic_projection_linear``): a weighted least-squares affine camera ``x ~ A [X;
  1]`` from model points to image points, its two rows made an orthonormal pair (SVD) and scaled by their
  mean norm. It needs no initial guess and at least four non-coplanar points.
* :func:`transform_camera` re-expresses a facezoo camera after a crop ``crop = A photo`` whose linear part
  is an isotropic scale ``k`` (every facezoo crop is: :func:`facezoo.data.landmark_box_affine`,
  :func:`facezoo.data.deep3d_affine`): a weak-perspective camera scales ``s`` and moves ``t2d``; a
  perspective camera scales its focal length and moves its principal point (the 3D pose is unchanged).

Example:
    >>> import torch
    >>> from facezoo.geometry import WeakPerspective
    >>> cam = WeakPerspective(torch.tensor([2.0]), torch.eye(3)[None], torch.tensor([[10.0, 20.0]]))
    >>> A = torch.tensor([[[0.5, 0.0, 1.0], [0.0, 0.5, -2.0]]])
    >>> x = torch.tensor([[[3.0, 4.0, 5.0]]])
    >>> crop = transform_camera(cam, A).project(x)
    >>> torch.allclose(crop, 0.5 * cam.project(x) + torch.tensor([1.0, -2.0]))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.geometry import Perspective, WeakPerspective

__all__ = ["affine_camera_init", "frontal_camera_init", "transform_camera", "weak_to_perspective"]


def affine_camera_init(points3d: Tensor, points2d: Tensor, weight: Tensor | None = None) -> WeakPerspective:
    """Weighted linear weak-perspective pose of ``points3d [B,L,3]`` (model mm) seen at ``points2d [B,L,2]``
    (pixels, y down); ``weight [B,L]`` (0 drops a point). Returns a float64 :class:`WeakPerspective`.

    Example:
        >>> X = torch.randn(1, 10, 3, dtype=torch.float64)
        >>> cam = WeakPerspective(torch.tensor([3.0]), torch.eye(3)[None], torch.tensor([[5.0, 6.0]]))
        >>> est = affine_camera_init(X, cam.to(dtype=torch.float64).project(X))
        >>> round(float(est.scale), 6), est.t2d.round(decimals=6).tolist()
        (3.0, [[5.0, 6.0]])
    """
    if points3d.ndim != 3 or points3d.shape[-1] != 3 or points2d.shape != (*points3d.shape[:2], 2):
        raise ValueError(
            f"points3d [B,L,3] and points2d [B,L,2] expected, got {tuple(points3d.shape)} and "
            f"{tuple(points2d.shape)}"
        )
    X, x = points3d.double(), points2d.double()
    b, n = X.shape[:2]
    w = torch.ones(b, n, dtype=X.dtype, device=X.device) if weight is None else weight.to(X).clamp_min(0)
    if bool(((w > 0).sum(-1) < 4).any()):
        raise ValueError("affine_camera_init: needs at least 4 weighted points per face")
    sw = w.sqrt()[..., None]
    a = torch.cat((X, torch.ones_like(X[..., :1])), -1) * sw  # [B,L,4]
    sol = torch.linalg.lstsq(a, x * sw).solution  # [B,4,2]: u = a1.X + tu, v = a2.X + tv
    r1, r2 = sol[:, :3, 0], -sol[:, :3, 1]  # image v grows downwards: model +y maps to -v
    scale = (r1.norm(dim=-1) + r2.norm(dim=-1)) / 2
    rows = torch.stack((r1, r2, torch.linalg.cross(r1, r2, dim=-1)), 1)
    u, _, vh = torch.linalg.svd(rows)
    d = torch.linalg.det(u @ vh)
    u = torch.cat((u[..., :2], u[..., 2:] * d[:, None, None]), -1)
    return WeakPerspective(scale, u @ vh, sol[:, 3, :])


def frontal_camera_init(points3d: Tensor, points2d: Tensor, weight: Tensor | None = None) -> WeakPerspective:
    """Weak-perspective pose with no yaw or pitch: the least-squares 2D similarity (roll, scale, shift;
    Umeyama) from the points' frontal projection ``(x, -y)`` onto ``points2d``. For few points (five), where
    the affine camera's depth rows are not determined.

    Example:
        >>> X = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]], dtype=torch.float64)
        >>> cam = frontal_camera_init(X, torch.tensor([[[5.0, 5.0], [7.0, 5.0], [5.0, 3.0]]]))
        >>> round(float(cam.scale), 6), cam.t2d.tolist()
        (2.0, [[5.0, 5.0]])
    """
    from facezoo.geometry.icp import umeyama

    X, x = points3d.double(), points2d.double().to(points3d.device)
    w = None if weight is None else weight.to(X) > 0
    src = X[..., :2] * X.new_tensor([1.0, -1.0])
    rots, ts, ss = [], [], []
    for i in range(len(X)):  # a handful of photos; umeyama has no weights, so drop the unweighted points
        keep = slice(None) if w is None else w[i]
        r, t, s = umeyama(src[i : i + 1, keep], x[i : i + 1, keep])
        rots.append(r[0]), ts.append(t[0]), ss.append(s[0])
    r2 = torch.stack(rots)  # maps (x, -y) to pixels: rows (cos, -sin; sin, cos) with y flipped
    flip = torch.diag(X.new_tensor([1.0, -1.0]))
    m = flip @ r2 @ flip  # the same roll in model (y up) coordinates
    rot = torch.zeros(len(X), 3, 3, dtype=X.dtype, device=X.device)
    rot[:, :2, :2] = m
    rot[:, 2, 2] = 1.0
    return WeakPerspective(torch.stack(ss), rot, torch.stack(ts))


def weak_to_perspective(camera: WeakPerspective, focal, center) -> Perspective:
    """The perspective camera (``focal`` px, ``center [B,2]`` or ``(cx, cy)``) that images the model origin
    where ``camera`` does and at the same scale there (distance ``focal / scale``).

    Example:
        >>> weak = WeakPerspective(torch.tensor([2.0]), torch.eye(3)[None], torch.tensor([[60.0, 40.0]]))
        >>> persp = weak_to_perspective(weak, 2000.0, (50.0, 50.0))
        >>> persp.project(torch.zeros(1, 1, 3)).tolist(), persp.translation[0, 2].item()
        ([[[60.0, 40.0]]], -1000.0)
    """
    s = camera.scale
    center = torch.as_tensor(center, dtype=s.dtype, device=s.device).expand(len(camera), 2)
    focal = torch.as_tensor(focal, dtype=s.dtype, device=s.device).expand(len(camera))
    t = torch.stack(
        ((camera.t2d[:, 0] - center[:, 0]) / s, -(camera.t2d[:, 1] - center[:, 1]) / s, -focal / s), -1
    )
    return Perspective(focal, center, camera.rotation, t)


def _similarity(affine: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    if affine.ndim == 2:
        affine = affine[None]
    if affine.ndim != 3 or affine.shape[1:] != (2, 3) or affine.shape[0] not in (1, batch):
        raise ValueError(f"affine: expected [B={batch},2,3], got {tuple(affine.shape)}")
    lin = affine[..., :2]
    k = (lin[:, 0, 0] + lin[:, 1, 1]) / 2
    off = (lin - k[:, None, None] * torch.eye(2, dtype=lin.dtype, device=lin.device)).abs().amax((1, 2))
    if bool((off > 1e-6 * k.abs().clamp_min(1e-12)).any()) or bool((k <= 0).any()):
        raise ValueError(
            "affine: transform_camera needs a crop made of an isotropic scale and a shift (no rotation or "
            f"shear), got linear part {lin.tolist()}"
        )
    return k.expand(batch), affine[:, :, 2].expand(batch, 2)


def transform_camera(camera, affine: Tensor):
    """The camera whose pixels are ``affine [B,2,3]`` applied to ``camera``'s (scale + shift only)."""
    k, shift = _similarity(affine.to(camera.device, camera.dtype), len(camera))
    if isinstance(camera, WeakPerspective):
        return WeakPerspective(camera.scale * k, camera.rotation, camera.t2d * k[:, None] + shift)
    if isinstance(camera, Perspective):
        return Perspective(
            camera.focal * k, camera.center * k[:, None] + shift, camera.rotation, camera.translation
        )
    raise TypeError(f"camera: expected a facezoo WeakPerspective or Perspective, got {type(camera).__name__}")

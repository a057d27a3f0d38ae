"""MVF-Net's visibility masks (mvfnet.txt §3.5, Figs. 3 and 4).

For a pair (observed view T, rendered projection ``I_{S->T}`` from source view S):

* **Rendered-image mask** ``M_{S->T}``: pixels of T covered by the (z-buffered) mesh whose triangle S sees
  (:func:`facezoo.render.sampling.render_projection`'s ``seen``), minus "regions that may be occluded in other
  views", located with the mesh's 3D landmarks projected into T (Fig. 3: nose tip and eyebrows).
* **Observed-image mask** ``M_T^{(S)}``: "an initial mask using the texture sampling regions" (the mesh's
  coverage of T) refined by "a joint edge-preserving filtering [the domain transform] ... with the input real
  image as guidance" (:func:`facezoo.render.domain_transform.domain_transform_filter`, thresholded at 0.5),
  minus the same landmark regions located with T's *2D detected* landmarks (Fig. 4).

The landmark regions (the paper shows them only in figures; our reading, :func:`landmark_region_mask`):

* above the eyebrows: pixels above the piecewise-linear curve through the ten eyebrow landmarks (17-26,
  0-based iBUG), extended flat beyond the outer ones;
* beyond the nose: the half of the face behind the nose ridge as seen from the pair's *more oblique* camera
  (the one whose direction is farther from the face's frontal axis), cut along the piecewise-linear curve
  through the nose bridge and tip (27-30) and the subnasale (33), extended vertically. No cut when both
  cameras are within ``frontal_tolerance`` (rad) of frontal.

All masks are 0/1 floats without gradients (they select pixels; the losses' gradients come from the images).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from facezoo.geometry.cameras import WeakPerspective
from facezoo.render.domain_transform import domain_transform_filter

BROW = tuple(range(17, 27))
NOSE = (27, 28, 29, 30, 33)


def _interp(xq: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear ``f(xq)`` per row (``xq [N,Q]``, knots ``xp, fp [N,K]``), flat beyond the ends."""
    order = xp.argsort(-1)
    xp, fp = xp.gather(-1, order), fp.gather(-1, order)
    xq = xq.clamp(xp[:, :1], xp[:, -1:])
    i = torch.searchsorted(xp.contiguous(), xq.contiguous()).clamp(1, xp.shape[-1] - 1)
    x0, x1 = xp.gather(-1, i - 1), xp.gather(-1, i)
    f0, f1 = fp.gather(-1, i - 1), fp.gather(-1, i)
    t = ((xq - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def oblique_side(
    camera_src: WeakPerspective, camera_dst: WeakPerspective, frontal_tolerance: float = 0.1
) -> Tensor:
    """``[N]`` in {-1, 0, +1}: the image-x side (in the target view) of the face half that the pair's more
    oblique camera sees; the other half is "beyond the nose" (module docstring). 0 when both are frontal.

    The direction toward a camera in model space is ``R^T e_z``; its x component is the sine of the camera's
    yaw relative to the face. Model +x maps to image +x in the target when ``(R_dst e_x)_x > 0``.

    Example:
        >>> from facezoo.geometry.rotations import euler_to_matrix
        >>> cam = lambda yaw: WeakPerspective(torch.ones(1), euler_to_matrix(torch.tensor([[0.0, yaw, 0.0]])),
        ...                                   torch.zeros(1, 2))
        >>> front = cam(0.0)
        >>> oblique_side(cam(0.6), front), oblique_side(front, cam(-0.6)), oblique_side(front, front)
        (tensor([-1.]), tensor([1.]), tensor([0.]))
    """
    r_s, r_d = camera_src.rotation.detach(), camera_dst.rotation.detach()
    d_s, d_d = r_s[:, 2, 0], r_d[:, 2, 0]  # (R^T e_z)_x = R[2, 0]
    oblique = torch.where(d_s.abs() >= d_d.abs(), d_s, d_d)
    flip = torch.sign(r_d[:, 0, 0])  # model +x -> image +x?
    side = torch.sign(oblique) * torch.where(flip == 0, torch.ones_like(flip), flip)
    return torch.where(oblique.abs() > math.sin(frontal_tolerance), side, torch.zeros_like(side))


def landmark_region_mask(landmarks2d: Tensor, side: Tensor, size: tuple[int, int]) -> Tensor:
    """``[N,1,H,W]`` 0/1: 1 where a pixel is kept, 0 above the eyebrows and beyond the nose on the side
    opposite ``side`` (module docstring). ``landmarks2d [N,68,2]`` pixels; ``side [N]`` in {-1, 0, +1}.

    Example:
        >>> lm = torch.zeros(1, 68, 2)
        >>> lm[0, 17:27] = torch.stack((torch.linspace(4, 12, 10), torch.full((10,), 5.0)), -1)  # brows y=5
        >>> lm[0, [27, 28, 29, 30, 33]] = torch.tensor([[8.0, 6], [8, 8], [8, 10], [8, 12], [8, 13]])
        >>> m = landmark_region_mask(lm, torch.tensor([1.0]), (16, 16))[0, 0]
        >>> m[2, 10].item(), m[10, 10].item(), m[10, 5].item()      # above the brows, seen side, beyond
        (0.0, 1.0, 0.0)
    """
    if landmarks2d.ndim != 3 or landmarks2d.shape[1:] != (68, 2):
        raise ValueError(f"landmarks2d: expected [N,68,2], got {tuple(landmarks2d.shape)}")
    h, w = size
    n = landmarks2d.shape[0]
    lm = landmarks2d.detach()
    xs = torch.arange(w, device=lm.device, dtype=lm.dtype) + 0.5
    ys = torch.arange(h, device=lm.device, dtype=lm.dtype) + 0.5
    brow = lm[:, BROW]
    y_brow = _interp(xs.expand(n, w), brow[..., 0], brow[..., 1])  # [N,W]
    keep = ys[None, :, None] >= y_brow[:, None, :]
    nose = lm[:, NOSE]
    x_nose = _interp(ys.expand(n, h), nose[..., 1], nose[..., 0])  # [N,H]
    s = side.to(lm)[:, None, None]
    beyond = (s * (xs[None, None, :] - x_nose[:, :, None])) < 0
    keep = keep & ~beyond
    return keep[:, None].to(lm.dtype)


def observed_mask(
    image: Tensor, coverage: Tensor, landmarks2d: Tensor, side: Tensor, sigma_s: float, sigma_r: float
) -> Tensor:
    """``M_T^{(S)}`` ``[N,1,H,W]``: the mesh's coverage of the observed ``image [N,3,H,W]`` (``coverage``
    ``[N,1,H,W]``) filtered with the image as guidance (domain transform, ``sigma_s`` px, ``sigma_r``),
    thresholded at 0.5, times :func:`landmark_region_mask` of the detected ``landmarks2d``."""
    with torch.no_grad():
        refined = domain_transform_filter(coverage.float(), image.float(), sigma_s, sigma_r) > 0.5
        keep = landmark_region_mask(landmarks2d.float(), side, tuple(image.shape[-2:]))
        return (refined.to(keep) * keep).to(image.dtype)


__all__ = ["BROW", "NOSE", "landmark_region_mask", "oblique_side", "observed_mask"]

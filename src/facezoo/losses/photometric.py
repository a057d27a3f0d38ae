"""Robust, masked photometric loss (Deep3DFace, deep3d.txt §4.1.1, Eq. 2).

``L_photo = sum_i M_i A_i ||I_i - I'_i||_2 / sum_i M_i A_i``: the per-pixel *Euclidean* (not squared) colour
distance, weighted by the skin attention ``A`` and restricted to the rendered face region ``M`` (the
z-buffered coverage of the reprojected mesh, so self-occluded surfaces never count). As in the official code
(``photo_loss``), the sums run over the whole batch (one ratio per batch, not a mean of per-image ratios), a
small epsilon inside the square root keeps the gradient finite at zero error, and the denominator is
clamped at 1 pixel so that an empty mask gives 0 rather than NaN. (So a face covering less than one pixel
of weight in the whole batch is divided by 1, not by its weight: its loss is scaled down, not blown up.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import check_valid

EPS = 1e-8


def _check_image(name: str, x: Tensor, channels: int | None = None) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B,C,H,W], got {getattr(x, 'shape', type(x))}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got shape {tuple(x.shape)}")


def photometric_loss(
    image: Tensor,
    rendered: Tensor,
    mask: Tensor,
    attention: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Eq. 2 of Deep3DFace: attention-weighted mean per-pixel L2 colour distance over the face region.

    Args:
        image: ``[B,3,H,W]`` input image, colours in [0, 1].
        rendered: ``[B,3,H,W]`` reconstruction rendered into the same crop.
        mask: ``[B,1,H,W]`` face region ``M`` in [0, 1] (the renderer's z-buffered coverage; soft at
            antialiased silhouettes). Pixels with 0 are ignored whatever their colour.
        attention: ``[B,1,H,W]`` skin attention ``A`` (``None`` = 1 everywhere).
        valid: optional bool ``[B]``; images that are False (placeholders of a mixed batch) count in neither
            sum (:mod:`facezoo.losses.masks`).

    Returns:
        Scalar loss (colour units, i.e. 0 for a perfect match, at most sqrt(3)).

    Example:
        >>> img = torch.zeros(1, 3, 2, 2); ren = torch.zeros(1, 3, 2, 2); ren[0, :, 0, 0] = 1.0
        >>> m = torch.ones(1, 1, 2, 2)
        >>> round(float(photometric_loss(img, ren, m)), 4)  # sqrt(3) + 3 x sqrt(EPS), over 4
        0.4331
    """
    _check_image("image", image, 3)
    _check_image("rendered", rendered, 3)
    _check_image("mask", mask, 1)
    if rendered.shape != image.shape or mask.shape[0] != image.shape[0] or mask.shape[2:] != image.shape[2:]:
        raise ValueError(
            f"image {tuple(image.shape)}, rendered {tuple(rendered.shape)} and mask {tuple(mask.shape)} "
            "must agree in batch and spatial size"
        )
    weight = mask
    if attention is not None:
        _check_image("attention", attention, 1)
        if attention.shape != mask.shape:
            raise ValueError(f"attention: expected shape {tuple(mask.shape)}, got {tuple(attention.shape)}")
        weight = mask * attention
    valid = check_valid(valid, image.shape[0])
    if valid is not None:
        weight = weight * valid.to(weight)[:, None, None, None]
    dist = torch.sqrt(((image - rendered) ** 2).sum(dim=1, keepdim=True) + EPS)
    return (dist * weight).sum() / weight.sum().clamp_min(1.0)

"""UV-space regularisers of the nonlinear 3DMM (Tran, Liu & Liu 2019, nonlinear3dmm.txt §3.2-§3.3).

Every map is ``[B,C,H,W]`` (top-row-first UV image, :mod:`facezoo.render.uv`), ``mask`` a 0/1 ``[1|B,1,H,W]``
of the texels that belong to the face (:func:`facezoo.render.uv_coverage`), and every loss takes ``valid
[B]`` (:mod:`facezoo.losses.masks`). Sums over texels are turned into means over the texels that count, so the
weights do not depend on the UV resolution (the paper writes sums; its λ's were "selected to bring losses to
similar magnitudes", §4, and so are ours, see :class:`facezoo.methods.NonlinearFace3DMM`).

- :func:`albedo_symmetry`, Eq. 8: ``||A_uv - flip(A_uv)||_1`` (horizontal flip).
- :func:`albedo_constancy`, Eq. 9: ``sum_{j in N_i} w(i, j) ||A(i) - A(j)||_2^p`` over 4-neighbourhoods with
  ``w = exp(-alpha ||c(i) - c(j)||)`` and ``c = I / |I|`` the chromaticity of the input image unwrapped
  into UV through the current fit. The paper does not give ``alpha`` and ``p``; we use ``alpha = 15`` and
  ``p = 0.8`` (a robust, sparsity-promoting ``p < 1``, as in the albedo-constancy priors this term comes
  from).
- :func:`shape_smoothness`, Eq. 10: ``sum_i ||S(i) - mean_{j in N_i} S(j)||_2``, the uniform Laplacian of the
  UV position map (neighbours inside the mask only, so the chart border is not pulled toward the background).
- :func:`residual_magnitude`, Eq. 14: ``||Delta||_1`` of a residual ``S - S~`` or ``A - A~``.
- :func:`residual_soft_symmetry`, Eq. 16: ``||T . (Delta S_z - flip(Delta S_z))||_1`` with ``T`` the
  occluded texels; the flipped (visible) side is a target (no gradient), so the unseen side copies the
  details of the seen one and not the other way round (the paper is silent; this is our reading of "soft
  symmetry ... on occluded regions").
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import check_valid

EPS = 1e-8


def _check_map(name: str, x: Tensor, channels: int | None = None) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float UV map [B,C,H,W], got {getattr(x, 'shape', type(x))}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got shape {tuple(x.shape)}")
    return x


def _weights(x: Tensor, mask: Tensor | None, valid: Tensor | None) -> Tensor:
    """``[B,1,H,W]`` texel weights: the mask (or 1) times the row mask."""
    b, _, h, w = x.shape
    if mask is None:
        m = x.new_ones(1, 1, h, w)
    else:
        m = _check_map("mask", mask, 1).to(x)
        if m.shape[2:] != (h, w) or m.shape[0] not in (1, b):
            raise ValueError(f"mask: expected [1|{b},1,{h},{w}], got {tuple(m.shape)}")
    m = m.expand(b, 1, h, w)
    valid = check_valid(valid, b)
    if valid is not None:
        m = m * valid.to(m)[:, None, None, None]
    return m


def _mean(values: Tensor, weight: Tensor) -> Tensor:
    """``sum(w v) / sum(w)``; 0 (attached) when nothing counts."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def flip_uv(x: Tensor) -> Tensor:
    """The horizontal flip of a UV map ``[...,H,W]`` (u -> 1 - u: the face's left-right mirror for a layout
    symmetric about u = 0.5).

    Example:
        >>> flip_uv(torch.tensor([[1.0, 2.0, 3.0]]))
        tensor([[3., 2., 1.]])
    """
    return x.flip(-1)


def albedo_symmetry(albedo: Tensor, mask: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
    """Eq. 8: mean absolute difference between the albedo map and its mirror image, over the texels where
    both the texel and its mirror are in ``mask``.

    Example:
        >>> a = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])
        >>> float(albedo_symmetry(a))  # |0-3|, |1-2|, |2-1|, |3-0|
        2.0
    """
    _check_map("albedo", albedo)
    w = _weights(albedo, mask, valid)
    w = w * flip_uv(w)
    return _mean((albedo - flip_uv(albedo)).abs().mean(1, keepdim=True), w)


def _pairs(x: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The right and down neighbour pairs of a map (each unordered 4-neighbour pair once)."""
    return (x[..., :, :-1], x[..., :, 1:]), (x[..., :-1, :], x[..., 1:, :])


def albedo_constancy(
    albedo: Tensor,
    chromaticity: Tensor,
    mask: Tensor | None = None,
    valid: Tensor | None = None,
    alpha: float = 15.0,
    p: float = 0.8,
) -> Tensor:
    """Eq. 9: chromaticity-weighted ``||A(i) - A(j)||_2^p`` over 4-neighbour texel pairs inside ``mask`` (the
    mean over pairs; each unordered pair counted once, which is the paper's double sum up to a factor 2).

    Args:
        albedo: ``[B,3,H,W]`` albedo map.
        chromaticity: ``[B,3,H,W]`` ``c = I / |I|`` of the input image unwrapped to UV (no gradient).
        mask: ``[1|B,1,H,W]`` texels that count (face and seen in the image).
        alpha, p: the weight's sharpness and the norm's exponent.

    Example:
        >>> a = torch.tensor([[[[0.0, 0.3]], [[0.0, 0.4]], [[0.0, 0.0]]]])  # two texels 0.5 apart
        >>> c = torch.ones(1, 3, 1, 2)                                      # same chromaticity: w = 1
        >>> round(float(albedo_constancy(a, c)), 4)  # 0.5 ** 0.8
        0.5743
    """
    _check_map("albedo", albedo)
    _check_map("chromaticity", chromaticity)
    if chromaticity.shape != albedo.shape:
        raise ValueError(f"chromaticity: expected {tuple(albedo.shape)}, got {tuple(chromaticity.shape)}")
    w = _weights(albedo, mask, valid)
    total, count = albedo.new_zeros(()), albedo.new_zeros(())
    for (a0, a1), (c0, c1), (w0, w1) in zip(_pairs(albedo), _pairs(chromaticity.detach()), _pairs(w)):
        weight = torch.exp(-alpha * (c0 - c1).norm(dim=1, keepdim=True)) * w0 * w1
        dist = (((a0 - a1) ** 2).sum(1, keepdim=True) + EPS) ** (p / 2)
        total = total + (weight * dist).sum()
        count = count + (w0 * w1).sum()
    return total / count.clamp_min(1.0)


def chromaticity(image: Tensor, eps: float = 1e-6) -> Tensor:
    """``c(x) = I(x) / |I(x)|`` per pixel (Eq. 9's colour reference), ``[B,3,H,W] -> [B,3,H,W]``.

    Example:
        >>> chromaticity(torch.tensor([[[[3.0]], [[0.0]], [[4.0]]]])).flatten().tolist()
        [0.6000000238418579, 0.0, 0.800000011920929]
    """
    _check_map("image", image, 3)
    return image / image.norm(dim=1, keepdim=True).clamp_min(eps)


def shape_smoothness(shape: Tensor, mask: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
    """Eq. 10: mean over the texels in ``mask`` of ``||S(i) - mean_{j in N_i} S(j)||_2``, ``N_i`` the
    4-neighbours of ``i`` that are in ``mask`` (texels without one do not count).

    Example:
        >>> s = torch.zeros(1, 3, 3, 3); s[0, 2, 1, 1] = 4.0  # a 4 mm bump in z at the centre
        >>> round(float(shape_smoothness(s)), 3)  # (centre 4 + edge texels 4/3 each (|N| = 3) x 4) / 9
        1.037
    """
    _check_map("shape", shape)
    w = _weights(shape, mask, valid)
    pad_s = torch.nn.functional.pad(shape * w, (1, 1, 1, 1))
    pad_w = torch.nn.functional.pad(w, (1, 1, 1, 1))
    h, wd = shape.shape[-2:]

    def shifts(x):
        return (x[..., :-2, 1:-1], x[..., 2:, 1:-1], x[..., 1:-1, :-2], x[..., 1:-1, 2:])

    n = sum(shifts(pad_w))
    mean_nb = sum(shifts(pad_s)) / n.clamp_min(1.0)
    lap = ((shape - mean_nb) ** 2).sum(1, keepdim=True).add(EPS).sqrt()
    return _mean(lap, w * (n > 0).to(w))


def residual_magnitude(residual: Tensor, mask: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
    """Eq. 14 (one of its two terms): mean absolute residual over the texels in ``mask`` and the channels.

    Example:
        >>> float(residual_magnitude(torch.tensor([[[[1.0, -3.0]]]])))
        2.0
    """
    _check_map("residual", residual)
    w = _weights(residual, mask, valid)
    return _mean(residual.abs().mean(1, keepdim=True), w)


def residual_soft_symmetry(
    depth_residual: Tensor, occluded: Tensor, mask: Tensor | None = None, valid: Tensor | None = None
) -> Tensor:
    """Eq. 16: mean over the face texels of ``T |dz - flip(dz)|``, ``T = occluded`` (the texels the camera
    does not see); ``flip(dz)`` is a target without gradient (module docstring).

    Args:
        depth_residual: ``[B,1,H,W]`` the z channel of ``S - S~``.
        occluded: ``[B,1,H,W]`` 0/1 (or soft) visibility complement ``T``.
        mask: ``[1|B,1,H,W]`` face texels.

    Example:
        >>> dz = torch.tensor([[[[0.0, 2.0]]]]); t = torch.tensor([[[[1.0, 0.0]]]])  # left texel unseen
        >>> float(residual_soft_symmetry(dz, t))  # |0 - 2| on the left, masked on the right, over 2 texels
        1.0
    """
    _check_map("depth_residual", depth_residual, 1)
    _check_map("occluded", occluded, 1)
    if occluded.shape != depth_residual.shape:
        raise ValueError(f"occluded: expected {tuple(depth_residual.shape)}, got {tuple(occluded.shape)}")
    w = _weights(depth_residual, mask, valid)
    diff = occluded.to(depth_residual) * (depth_residual - flip_uv(depth_residual).detach()).abs()
    return _mean(diff, w)

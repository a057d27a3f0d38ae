"""Confidence-weighted negative log-likelihoods of image and feature errors (SIR, sir.txt §III-D, Eqs. 11-12;
Unsup3D's formulation, Wu et al. CVPR 2020).

A network predicts a per-pixel scale ``sigma > 0`` (:class:`facezoo.nn.ConfNet`). Large ``sigma`` down-weights
a pixel's error (occluders, hair, beards) at the price of ``log sigma``:

* Eq. 11, Laplacian NLL of the L1 error: ``-1/|Omega| sum ln( 1/(sqrt2 sigma) exp(-sqrt2 l1 / sigma) )``
  ``= mean( sqrt2 l1 / sigma + ln(sqrt2 sigma) )``, i.e. ``-log p`` of a Laplace(0, b = sigma/sqrt2).
* Eq. 12, Gaussian NLL of a feature difference: ``mean( l^2 / (2 sigma^2) + ln(sqrt(2 pi) sigma) )``.

Where the papers are silent (our choices, as Unsup3D's code): ``l1`` is the per-channel absolute difference
and one ``sigma`` map (1 channel) serves every channel; the mean runs over ``Omega`` = the pixels of ``mask``
(the rendered face) and the channels; the constants ``ln sqrt2`` and ``ln sqrt(2 pi)`` of the equations are
kept (they do not change gradients). A mask at another resolution than the features is resized with area
averaging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.losses.masks import check_valid

__all__ = ["gaussian_nll", "laplacian_nll"]


def _check(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B,C,H,W], got {getattr(x, 'shape', type(x))}")


def _reduce(nll: Tensor, mask: Tensor | None, valid: Tensor | None) -> Tensor:
    """Mean of ``nll [B,C,h,w]`` over the mask's pixels (resized to ``h x w``), channels and valid rows."""
    b, c, h, w = nll.shape
    weight = nll.new_ones(b, 1, h, w)
    if mask is not None:
        _check("mask", mask)
        if mask.shape[0] != b or mask.shape[1] != 1:
            raise ValueError(f"mask: expected [{b},1,H,W], got {tuple(mask.shape)}")
        weight = mask.to(nll) if mask.shape[-2:] == (h, w) else F.adaptive_avg_pool2d(mask.to(nll), (h, w))
    valid = check_valid(valid, b)
    if valid is not None:
        weight = weight * valid.to(nll)[:, None, None, None]
    weight = weight.expand_as(nll)
    return (nll * weight).sum() / weight.sum().clamp_min(1.0)


def _sigma(sigma: Tensor, like: Tensor) -> Tensor:
    _check("sigma", sigma)
    if sigma.shape[0] != like.shape[0] or sigma.shape[1] not in (1, like.shape[1]):
        raise ValueError(f"sigma: expected [{like.shape[0]},1|{like.shape[1]},h,w], got {tuple(sigma.shape)}")
    if sigma.shape[-2:] != like.shape[-2:]:
        sigma = F.interpolate(sigma, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return sigma


def _scale(pred: Tensor, target: Tensor, sigma: Tensor, eps: float) -> Tensor:
    """The checked inputs' scale map at the resolution of ``pred``, plus ``eps``."""
    _check("pred", pred)
    _check("target", target)
    if pred.shape != target.shape:
        raise ValueError(f"target: expected the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    return _sigma(sigma, pred) + eps


def laplacian_nll(
    pred: Tensor,
    target: Tensor,
    sigma: Tensor,
    mask: Tensor | None = None,
    valid: Tensor | None = None,
    eps: float = 1e-7,
) -> Tensor:
    """Eq. 11: mean Laplacian NLL of ``|pred - target|`` with scale map ``sigma``.

    Args:
        pred, target: ``[B,C,H,W]`` images (the rendering and the input).
        sigma: ``[B,1,h,w]`` positive confidence (scale) map; resized bilinearly to ``H x W`` if needed.
        mask: optional ``[B,1,H',W']`` region ``Omega`` in [0, 1] (resized by area averaging if needed).
        valid: optional bool ``[B]`` rows that count (:mod:`facezoo.losses.masks`).
        eps: added to ``sigma`` (Unsup3D's EPS).

    Returns:
        Scalar.

    Example:
        >>> x = torch.zeros(1, 1, 1, 1); s = torch.ones(1, 1, 1, 1)
        >>> round(float(laplacian_nll(x + 1.0, x, s, eps=0.0)), 4)   # sqrt2 + ln sqrt2
        1.7608
    """
    s = _scale(pred, target, sigma, eps)
    l1 = (pred - target).abs()
    nll = math.sqrt(2.0) * l1 / s + torch.log(math.sqrt(2.0) * s)
    return _reduce(nll, mask, valid)


def gaussian_nll(
    pred: Tensor,
    target: Tensor,
    sigma: Tensor,
    mask: Tensor | None = None,
    valid: Tensor | None = None,
    eps: float = 1e-7,
) -> Tensor:
    """Eq. 12: mean Gaussian NLL of the feature difference ``|pred - target|`` with scale map ``sigma``.

    Args:
        pred, target: ``[B,C,h,w]`` feature maps (e.g. VGG-16 ``relu3_3`` of the rendering and the input).
        sigma: ``[B,1,h',w']`` positive scale map (resized bilinearly to ``h x w`` if needed).
        mask, valid, eps: as :func:`laplacian_nll`.

    Returns:
        Scalar.

    Example:
        >>> x = torch.zeros(1, 1, 1, 1); s = torch.ones(1, 1, 1, 1)
        >>> round(float(gaussian_nll(x + 1.0, x, s, eps=0.0)), 4)   # 1/2 + ln sqrt(2 pi)
        1.4189
    """
    s = _scale(pred, target, sigma, eps)
    nll = (pred - target) ** 2 / (2.0 * s**2) + torch.log(math.sqrt(2.0 * math.pi) * s)
    return _reduce(nll, mask, valid)

"""Regularisers on morphable-model coefficients and albedo (Deep3DFace, deep3d.txt §4.3, Eqs. 5 and 6)."""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import masked_mean


def coefficient_l2(coeffs: Tensor) -> Tensor:
    """Squared norm ``||x||^2`` of each row of ``coeffs [B,K]`` -> ``[B]`` (coefficients in units of std, so
    this is the negative log of a standard-normal prior up to constants). Eq. 5 is
    ``w_a ||alpha||^2 + w_b ||beta||^2 + w_d ||delta||^2`` built from three of these.

    Example:
        >>> coefficient_l2(torch.tensor([[3.0, 4.0]]))
        tensor([25.])
    """
    if not isinstance(coeffs, Tensor) or coeffs.ndim != 2:
        raise ValueError(f"coeffs: expected [B,K], got {getattr(coeffs, 'shape', type(coeffs))}")
    return (coeffs**2).sum(-1)


def texture_variance(colours: Tensor, region: Tensor | None = None, valid: Tensor | None = None) -> Tensor:
    """Eq. 6: ``sum_c var(T_c, R)``, the per-channel variance of the albedo over a vertex region, averaged
    over the batch.

    As in the official code (``reflectance_loss``) the variance is the population variance (divide by the
    region size) around the region's mean colour.

    Args:
        colours: ``[B,V,3]`` per-vertex albedo (RGB in [0, 1]).
        region: bool ``[V]`` skin region ``R`` (``None`` = all vertices).
        valid: optional bool ``[B]``: the batch mean runs over these rows only (:mod:`facezoo.losses.masks`).

    Returns:
        Scalar.

    Example:
        >>> t = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
        >>> float(texture_variance(t))  # each channel has variance 0.25
        0.75
    """
    if not isinstance(colours, Tensor) or colours.ndim != 3:
        raise ValueError(f"colours: expected [B,V,C], got {getattr(colours, 'shape', type(colours))}")
    if region is not None:
        if region.shape != (colours.shape[1],) or region.dtype != torch.bool:
            raise ValueError(
                f"region: expected bool [{colours.shape[1]}], got {region.dtype} {tuple(region.shape)}"
            )
        if not bool(region.any()):
            raise ValueError("region: selects no vertex")
        colours = colours[:, region.to(colours.device)]
    mean = colours.mean(dim=1, keepdim=True)
    return masked_mean(((colours - mean) ** 2).mean(dim=1).sum(-1), valid)


def light_colour_variance(gamma: Tensor, valid: Tensor | None = None) -> Tensor:
    """The official Deep3DFace code's light regulariser (not in the paper): ``mean_{c,b} (gamma_{c,b} -
    mean_c gamma_{c,b})^2`` over the 27 SH coefficients (3 colours x 9 bands, channel-major as
    :func:`facezoo.render.sh_coefficients`), averaged over the batch. It pulls the light towards grey
    (monochromatic) light, leaving colour to the albedo; the official weight is 10 (``w_gamma``).

    Args:
        gamma: ``[B,27]`` or ``[B,3,9]`` SH coefficients.
        valid: optional bool ``[B]`` (:mod:`facezoo.losses.masks`).

    Returns:
        Scalar.

    Example:
        >>> g = torch.zeros(1, 3, 9); g[0, 0, 0] = 3.0  # red ambient only: mean 1, deviations 2, -1, -1
        >>> float(light_colour_variance(g))  # (4 + 1 + 1) / 27
        0.2222222238779068
    """
    if not isinstance(gamma, Tensor) or gamma.ndim not in (2, 3) or gamma.shape[1:].numel() != 27:
        raise ValueError(f"gamma: expected [B,27] or [B,3,9], got {getattr(gamma, 'shape', type(gamma))}")
    g = gamma.reshape(gamma.shape[0], 3, 9)
    return masked_mean((g - g.mean(dim=1, keepdim=True)).square().mean(dim=(1, 2)), valid)

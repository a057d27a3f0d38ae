"""UV albedo regulariser of SIR (sir.txt Eq. 16): smoothness plus a pull toward the mean albedo.

``L_rega(A) = sum_p || A(p) - 1/|N_p| sum_{q in N_p} A(q) ||_2 + epsilon_uv ||A||_2^2``: the first term is the
Euclidean (RGB) distance of each texel to the mean of its 4-neighbourhood (texels outside the map are not
neighbours: border texels average the neighbours they have), the second the squared magnitude.

Where the paper is silent (our choices): the paper calls the second term a residual that "enforces a prior
distribution towards the mean albedo", so ``A`` in it is the *residual* map predicted on top of the model's
mean albedo (:class:`facezoo.methods.SIR` decodes such a residual); the sums are averaged over texels and
batch rows (so the weights do not depend on the UV resolution); ``mask`` restricts both terms to the texels
the mesh uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.losses.masks import masked_mean

__all__ = ["uv_albedo_regulariser", "uv_smoothness"]


def uv_smoothness(uv_map: Tensor) -> Tensor:
    """``||A(p) - mean_{4-neighbours} A||_2`` per texel: ``[B,C,H,W] -> [B,1,H,W]``.

    Example:
        >>> a = torch.zeros(1, 1, 3, 3); a[0, 0, 1, 1] = 4.0     # edge texels have 3 neighbours: 4/3
        >>> uv_smoothness(a)[0, 0]
        tensor([[0.0000, 1.3333, 0.0000],
                [1.3333, 4.0000, 1.3333],
                [0.0000, 1.3333, 0.0000]])
    """
    if uv_map.ndim != 4:
        raise ValueError(f"uv_map: expected [B,C,H,W], got {tuple(uv_map.shape)}")
    kernel = uv_map.new_tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    c = uv_map.shape[1]
    sums = F.conv2d(uv_map, kernel.expand(c, 1, 3, 3), padding=1, groups=c)
    counts = F.conv2d(torch.ones_like(uv_map[:, :1]), kernel, padding=1)
    return (uv_map - sums / counts).norm(dim=1, keepdim=True)


def uv_albedo_regulariser(
    albedo: Tensor,
    residual: Tensor,
    eps_uv: float = 1.0,
    mask: Tensor | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Eq. 16 averaged over texels and rows: ``mean ||A - mean_N A||_2 + eps_uv mean_p ||R(p)||^2``.

    Args:
        albedo: ``[B,3,H,W]`` UV albedo ``A`` (the smoothness term).
        residual: ``[B,3,H,W]`` its residual over the mean albedo (the magnitude term).
        eps_uv: ``epsilon_uv``.
        mask: optional ``[1|B,1,H,W]`` texels in use (1) and not (0).
        valid: optional bool ``[B]`` rows that count.

    Example:
        >>> a = torch.ones(1, 3, 4, 4)
        >>> float(uv_albedo_regulariser(a, a, eps_uv=0.5))    # flat: no smoothness cost; 0.5 * 3 per texel
        1.5
    """
    if albedo.shape != residual.shape or albedo.ndim != 4:
        raise ValueError(
            "albedo and residual: expected matching [B,C,H,W], got "
            f"{tuple(albedo.shape)}, {tuple(residual.shape)}"
        )
    per_texel = uv_smoothness(albedo) + eps_uv * (residual**2).sum(1, keepdim=True)
    if mask is None:
        per_row = per_texel.mean(dim=(1, 2, 3))
    else:
        m = mask.to(per_texel).expand_as(per_texel)
        per_row = (per_texel * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp_min(1.0)
    return masked_mean(per_row, valid)

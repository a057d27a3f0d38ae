"""Edge-preserving joint filtering: the domain transform recursive filter (Gastal & Oliveira, SIGGRAPH 2011).

MVF-Net (mvfnet.txt §3.5, Fig. 4, its ref. [11]) refines the observed image's visibility mask with "a joint
edge-preserving filtering ... with the input real image as guidance, to force the edges of the mask aligned
well with the facial regions of the input image". This is that filter, the recursive (RF) variant:

* the guide's domain transform along a row, ``ct(x) = int 1 + sigma_s / sigma_r sum_c |I'_c(x)| dx``, makes
  distances large across guide edges;
* a first-order recursive filter with feedback ``a^d`` (``d`` the transformed distance between neighbours,
  ``a = exp(-sqrt(2) / sigma_H)``) runs left-to-right then right-to-left, then along columns;
* ``iterations`` passes with ``sigma_H_i = sigma_s sqrt(3) 2^(N-i) / sqrt(4^N - 1)`` (Eq. 14 of the paper)
  so that the combined kernel has standard deviation ``sigma_s``.

``sigma_s`` is in pixels, ``sigma_r`` in the guide's units ([0, 1] images). The filter is differentiable in
the input (it is linear in it); the guide enters through the feedback weights only. Cost: ``O(H W)`` per pass
with a Python loop over rows/columns (it filters masks, which need no gradient, a few times per step).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _recursive_rows(x: Tensor, weight: Tensor) -> Tensor:
    """Left-to-right then right-to-left recursive filter along the last axis; ``weight[..., i]`` is the
    feedback between samples ``i-1`` and ``i``."""
    cols = list(x.unbind(-1))
    w = weight.unbind(-1)
    for i in range(1, len(cols)):
        cols[i] = cols[i] + w[i] * (cols[i - 1] - cols[i])
    for i in range(len(cols) - 2, -1, -1):
        cols[i] = cols[i] + w[i + 1] * (cols[i + 1] - cols[i])
    return torch.stack(cols, -1)


def domain_transform_filter(
    image: Tensor, guide: Tensor, sigma_s: float = 8.0, sigma_r: float = 0.1, iterations: int = 3
) -> Tensor:
    """Joint edge-preserving smoothing of ``image`` guided by ``guide`` (module docstring).

    Args:
        image: ``[B,C,H,W]`` to filter (e.g. a 0/1 mask).
        guide: ``[B,G,H,W]`` the guidance image (e.g. the RGB photo in [0, 1]); same B, H, W.
        sigma_s: spatial standard deviation (pixels).
        sigma_r: range standard deviation (guide units); small = edges stop the smoothing.
        iterations: passes (3 in the paper's examples).

    Returns:
        ``[B,C,H,W]``.

    Example:
        >>> guide = torch.zeros(1, 1, 4, 12); guide[..., 6:] = 1.0      # an edge between columns 5 and 6
        >>> mask = torch.zeros(1, 1, 4, 12); mask[..., :4] = 1.0
        >>> out = domain_transform_filter(mask, guide, sigma_s=4.0, sigma_r=0.05)
        >>> bool(out[..., 5].min() > 0.5), bool(out[..., 6:].max() < 1e-3)  # up to the edge, not past it
        (True, True)
    """
    for name, x in (("image", image), ("guide", guide)):
        if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"domain_transform_filter: {name} must be a float [B,C,H,W] tensor")
    if guide.shape[0] != image.shape[0] or guide.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"domain_transform_filter: guide {tuple(guide.shape)} must match image {tuple(image.shape)} in "
            "batch and size"
        )
    if not (sigma_s > 0 and sigma_r > 0) or iterations < 1:
        raise ValueError(f"sigma_s, sigma_r > 0 and iterations >= 1, got {sigma_s}, {sigma_r}, {iterations}")
    guide = guide.to(image)
    ratio = sigma_s / sigma_r
    # transformed distance between horizontal / vertical neighbours (first sample: no predecessor -> 0 weight)
    dx = torch.zeros_like(guide[:, :1])
    dx[..., 1:] = (guide[..., 1:] - guide[..., :-1]).abs().sum(1, keepdim=True)
    dy = torch.zeros_like(guide[:, :1])
    dy[..., 1:, :] = (guide[..., 1:, :] - guide[..., :-1, :]).abs().sum(1, keepdim=True)
    dx, dy = 1.0 + ratio * dx, 1.0 + ratio * dy
    out = image
    n = iterations
    for i in range(n):
        sigma_h = sigma_s * math.sqrt(3.0) * 2 ** (n - i - 1) / math.sqrt(4**n - 1)
        a = math.exp(-math.sqrt(2.0) / sigma_h)
        wx = a**dx
        wx[..., 0] = 0.0
        wy = a**dy
        wy[..., 0, :] = 0.0
        out = _recursive_rows(out, wx.expand_as(out))
        out = _recursive_rows(out.transpose(-1, -2), wy.transpose(-1, -2).expand_as(out.transpose(-1, -2)))
        out = out.transpose(-1, -2)
    return out


__all__ = ["domain_transform_filter"]

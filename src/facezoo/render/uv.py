"""UV-space maps: rasterize per-vertex attributes into a UV image and sample UV images at vertices.

UV convention (MorphableModel.uv): ``(0, 0)`` is the bottom-left corner of the UV image and v points up, so
UV image row ``r`` (top-row-first) holds ``v = 1 - (r + 0.5) / S``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facezoo.render._checks import check_tensor, check_tri
from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize


def render_uv(
    attr: torch.Tensor, uv: torch.Tensor, tri: torch.Tensor, size: int, backend: str = "auto"
) -> torch.Tensor:
    """Rasterize per-vertex attributes into UV space.

    Args:
        attr: ``[B,V,C]`` per-vertex attributes (e.g. positions or colours).
        uv: ``[V,2]`` texture coordinates in [0, 1], v up.
        tri: ``[T,3]`` int triangles.
        size: S, the UV image side in pixels.

    Returns:
        ``[B,C,S,S]``, zeros outside the UV charts; differentiable w.r.t. ``attr`` (overlapping charts: the
        lower triangle index wins).

    Example:
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> tri = torch.tensor([[0, 1, 2], [1, 3, 2]])
        >>> render_uv(uv[None], uv, tri, 2)[0, 1]  # the v channel: top row has v = 0.75
        tensor([[0.7500, 0.7500],
                [0.2500, 0.2500]])
    """
    attr = check_tensor("attr", attr, ndim=3)
    uv = check_tensor("uv", uv, ndim=2, last=2, device=attr.device)
    if uv.shape[0] != attr.shape[1]:
        raise ValueError(f"uv has {uv.shape[0]} vertices but attr has {attr.shape[1]}")
    tri = check_tri(tri, uv.shape[0], attr.device)
    uvd = uv.detach().float()
    pos = torch.cat((2 * uvd - 1, torch.zeros_like(uvd[:, :1]), torch.ones_like(uvd[:, :1])), -1)
    rast = rasterize(pos[None].expand(attr.shape[0], -1, -1).contiguous(), tri, (size, size), backend=backend)
    return interpolate(attr, rast, tri).permute(0, 3, 1, 2)


def sample_uv(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a UV image at per-vertex texture coordinates.

    Args:
        image: ``[B,C,S,S]`` (or ``[B,C,S_h,S_w]``) UV image, top-row-first.
        uv: ``[V,2]`` (shared) or ``[B,V,2]`` in [0, 1], ``(0, 0)`` = bottom-left corner of the image, v up.

    Returns:
        ``[B,V,C]``, differentiable w.r.t. ``image`` and ``uv`` (border padding outside [0, 1]).

    Example:
        >>> img = torch.arange(4.0).view(1, 1, 2, 2)  # rows [0, 1] (top) and [2, 3] (bottom)
        >>> sample_uv(img, torch.tensor([[0.25, 0.25], [0.75, 0.75]]))[0, :, 0]
        tensor([2., 1.])
    """
    image = check_tensor("image", image, ndim=4)
    uv = check_tensor("uv", uv, last=2, device=image.device)
    if uv.ndim == 2:
        uv = uv[None].expand(image.shape[0], -1, -1)
    if uv.ndim != 3 or uv.shape[0] != image.shape[0]:
        raise ValueError(f"uv must be [V,2] or [B,V,2] with B={image.shape[0]}, got {tuple(uv.shape)}")
    grid = torch.stack((2 * uv[..., 0] - 1, 1 - 2 * uv[..., 1]), -1)[:, None].to(image.dtype)  # [B,1,V,2]
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)

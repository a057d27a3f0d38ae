"""UV-space maps: rasterize per-vertex attributes into a UV image and sample UV images at vertices.

UV convention (MorphableModel.uv): ``(0, 0)`` is the bottom-left corner of the UV image and v points up, so
in an ``H x W`` UV image (top-row-first) row ``r`` holds ``v = 1 - (r + 0.5) / H`` and column ``c`` holds
``u = (c + 0.5) / W``. UV images may be non-square (the nonlinear 3DMM's are 192 x 224).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facezoo.render._checks import check_resolution, check_tensor, check_tri
from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize


def render_uv(
    attr: torch.Tensor,
    uv: torch.Tensor,
    tri: torch.Tensor,
    size: int | tuple[int, int],
    backend: str = "auto",
) -> torch.Tensor:
    """Rasterize per-vertex attributes into UV space.

    Args:
        attr: ``[B,V,C]`` per-vertex attributes (e.g. positions or colours).
        uv: ``[V,2]`` texture coordinates in [0, 1], v up.
        tri: ``[T,3]`` int triangles.
        size: the UV image size: ``(H, W)`` pixels, or an int S for ``(S, S)``.

    Returns:
        ``[B,C,H,W]``, zeros outside the UV charts; differentiable w.r.t. ``attr`` (overlapping charts: the
        lower triangle index wins).

    Example:
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> tri = torch.tensor([[0, 1, 2], [1, 3, 2]])
        >>> render_uv(uv[None], uv, tri, 2)[0, 1]  # the v channel: top row has v = 0.75
        tensor([[0.7500, 0.7500],
                [0.2500, 0.2500]])
        >>> render_uv(uv[None], uv, tri, (2, 4))[0, 0, 0]  # non-square: 4 columns, u = (c + 0.5) / 4
        tensor([0.1250, 0.3750, 0.6250, 0.8750])
    """
    attr = check_tensor("attr", attr, ndim=3)
    uv = check_tensor("uv", uv, ndim=2, last=2, device=attr.device)
    if uv.shape[0] != attr.shape[1]:
        raise ValueError(f"uv has {uv.shape[0]} vertices but attr has {attr.shape[1]}")
    tri = check_tri(tri, uv.shape[0], attr.device)
    size = check_resolution(size, "size")
    uvd = uv.detach().float()
    pos = torch.cat((2 * uvd - 1, torch.zeros_like(uvd[:, :1]), torch.ones_like(uvd[:, :1])), -1)
    rast = rasterize(pos[None].expand(attr.shape[0], -1, -1).contiguous(), tri, size, backend=backend)
    return interpolate(attr, rast, tri).permute(0, 3, 1, 2)


def sample_uv(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample a UV image at per-vertex texture coordinates.

    Args:
        image: ``[B,C,H,W]`` UV image (square or not), top-row-first.
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

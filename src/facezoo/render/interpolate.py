"""``interpolate``: per-vertex attributes -> per-pixel values with the rasterizer's barycentrics."""

from __future__ import annotations

import torch

from facezoo.render._checks import check_rast, check_tensor


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Interpolate vertex attributes over the rasterized triangles (nvdiffrast's ``interpolate``).

    Args:
        attr: ``[B,V,C]`` or ``[1,V,C]`` (shared by the batch) per-vertex attributes, any float dtype.
        rast: ``[B,H,W,4]`` from :func:`rasterize`.
        tri: ``[T,3]`` int32/int64, the triangles given to :func:`rasterize`.

    Returns:
        ``[B,H,W,C]``: ``u * a0 + v * a1 + (1 - u - v) * a2`` of the pixel's triangle, zeros on empty pixels.
        Differentiable w.r.t. ``attr`` and, through rast's (u, v), w.r.t. the positions given to
        ``rasterize``.

    Example:
        >>> pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [3.0, -1.0, 0.0, 1.0], [-1.0, 3.0, 0.0, 1.0]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> from facezoo.render import rasterize
        >>> out = interpolate(pos[..., :2], rasterize(pos, tri, (2, 2)), tri)
        >>> out[0, 0, 0].tolist()  # the top-left pixel centre in NDC
        [-0.5, 0.5]
    """
    rast = check_rast(rast)
    attr = check_tensor("attr", attr, ndim=3, device=rast.device)
    tri = check_tensor("tri", tri, ndim=2, last=3, dtypes=(torch.int32, torch.int64), device=rast.device)
    if not attr.is_floating_point():
        raise TypeError(f"attr must be a float tensor, got {attr.dtype}")
    batch = rast.shape[0]
    if attr.shape[0] not in (1, batch):
        raise ValueError(f"attr batch must be 1 or {batch} (rast's), got shape {tuple(attr.shape)}")
    n_vert, n_ch = attr.shape[1], attr.shape[2]
    tid = rast[..., 3].detach().long() - 1  # [B,H,W]
    covered = tid >= 0
    vidx = tri.long()[tid.clamp(min=0)]  # [B,H,W,3]
    if attr.shape[0] == batch and batch > 1:
        vidx = vidx + (torch.arange(batch, device=rast.device) * n_vert)[:, None, None, None]
    flat = attr.reshape(-1, n_ch)
    vals = flat[vidx.reshape(-1)].view(*vidx.shape, n_ch)  # [B,H,W,3,C]
    u = rast[..., 0:1].to(attr.dtype)
    v = rast[..., 1:2].to(attr.dtype)
    out = u * vals[..., 0, :] + v * vals[..., 1, :] + (1 - u - v) * vals[..., 2, :]
    return out * covered[..., None].to(attr.dtype)

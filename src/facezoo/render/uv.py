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


def unwrap_texture(
    image: torch.Tensor,
    points: torch.Tensor,
    uv: torch.Tensor,
    tri: torch.Tensor,
    size: int | tuple[int, int],
    visible: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unwrap an image's texture into UV space through a fitted mesh (the nonlinear 3DMM's face editing, §4.5,
    and the chromaticity reference of its albedo constancy, Eq. 9).

    Every texel of the ``H x W`` UV map is mapped to the surface point with that uv (rasterizing the mesh in
    UV space, :func:`render_uv`), that point to its image position (interpolating the vertices' projections
    ``points``), and the image is sampled there bilinearly.

    Args:
        image: ``[B,C,H_i,W_i]`` the photo.
        points: ``[B,V,2]`` the vertices' pixel positions in ``image`` (x right, y down, pixel centres
            at +0.5: ``camera.project(vertices)``).
        uv, tri: ``[V,2]`` texture coordinates (v up) and ``[T,3]`` triangles.
        size: the UV map ``(H, W)`` (or an int).
        visible: optional ``[B,V]`` per-vertex visibility (``MeshRenderer``'s ``visible``); texels of
            triangles with an invisible vertex are masked out.

    Returns:
        ``(texture [B,C,H,W], mask [B,1,H,W])``: the unwrapped texture (0 where the mask is 0; differentiable
        w.r.t. ``image`` and ``points``) and a 0/1 float mask of the texels covered by the UV charts, inside
        the image and (with ``visible``) seen.

    Example:
        >>> img = torch.arange(16.0).view(1, 1, 4, 4)
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> pts = torch.tensor([[[0.0, 4.0], [4.0, 4.0], [0.0, 0.0], [4.0, 0.0]]])  # the whole image, v up
        >>> tex, mask = unwrap_texture(img, pts, uv, torch.tensor([[0, 1, 2], [1, 3, 2]]), 4)
        >>> torch.equal(tex, img), int(mask.sum())
        (True, 16)
    """
    image = check_tensor("image", image, ndim=4)
    points = check_tensor("points", points, ndim=3, last=2, device=image.device)
    if points.shape[0] != image.shape[0]:
        raise ValueError(f"points batch {points.shape[0]} does not match image batch {image.shape[0]}")
    attr = [points.to(image.dtype), torch.ones_like(points[..., :1], dtype=image.dtype)]
    if visible is not None:
        visible = check_tensor("visible", visible, ndim=2, device=image.device)
        if visible.shape != points.shape[:2]:
            raise ValueError(f"visible must be [B,V] = {tuple(points.shape[:2])}, got {tuple(visible.shape)}")
        attr.append(visible.to(image.dtype)[..., None])
    maps = render_uv(torch.cat(attr, -1), uv, tri, size, backend=backend)  # [B,3|4,H,W]
    h_i, w_i = image.shape[-2:]
    px = maps[:, :2].permute(0, 2, 3, 1)
    grid = torch.stack((2 * px[..., 0] / w_i - 1, 2 * px[..., 1] / h_i - 1), -1)
    tex = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (grid.abs() <= 1).all(-1)[:, None]
    mask = (maps[:, 2:3] > 0.5) & inside
    if visible is not None:
        mask = mask & (maps[:, 3:4] > 1 - 1e-4)
    mask = mask.to(image.dtype)
    return tex * mask, mask


def uv_coverage(uv: torch.Tensor, tri: torch.Tensor, size: int | tuple[int, int], backend: str = "auto"):
    """``[1,1,H,W]`` 0/1 mask of the texels the mesh's UV charts cover (the "face pixels" of UV-space losses).

    Example:
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> uv_coverage(uv, torch.tensor([[0, 1, 2]]), 2)[0, 0]  # the lower-left half
        tensor([[1., 0.],
                [1., 1.]])
    """
    uv = check_tensor("uv", uv, ndim=2, last=2)
    ones = torch.ones(1, uv.shape[0], 1, dtype=uv.dtype, device=uv.device)
    return (render_uv(ones, uv, tri, size, backend=backend) > 0.5).to(uv.dtype)

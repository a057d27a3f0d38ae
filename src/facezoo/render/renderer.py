"""``MeshRenderer``: camera -> clip space -> rasterize -> interpolate -> SH shading -> antialias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.render._checks import check_tensor, check_tri
from facezoo.render.antialias import antialias as _antialias
from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize


@dataclass
class RenderOutput:
    """What :class:`MeshRenderer` returns (all top-row-first).

    image ``[B,C,H,W]`` (C = 3 for RGB), mask ``[B,1,H,W]`` soft coverage (antialiased), depth ``[B,1,H,W]``
    ``-z`` of the camera's view space (mm; 0 on the background), visible ``[B,V]`` bool, triangle_id
    ``[B,H,W]`` long (-1 on the background), rast ``[B,H,W,4]``.
    """

    image: torch.Tensor
    mask: torch.Tensor
    depth: torch.Tensor
    visible: torch.Tensor
    triangle_id: torch.Tensor
    rast: torch.Tensor


def vertex_visibility(
    pos_clip: torch.Tensor,
    vertex_depth: torch.Tensor,
    depth: torch.Tensor,
    covered: torch.Tensor,
    tol: torch.Tensor,
) -> torch.Tensor:
    """``[B,V]`` bool: a vertex is visible if it projects inside the image onto a covered pixel whose depth is
    not more than ``tol [B]`` nearer than the vertex (``depth`` ``[B,H,W]`` and ``vertex_depth [B,V]`` both
    grow away from the camera). Vertices on a silhouette whose pixel centre is not covered count as hidden."""
    batch, height, width = depth.shape
    w = pos_clip[..., 3]
    safe = torch.where(w > 0, w, torch.ones_like(w))
    col = torch.floor((pos_clip[..., 0] / safe + 1) * (width * 0.5)).long()
    row = torch.floor((1 - pos_clip[..., 1] / safe) * (height * 0.5)).long()
    inside = (w > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    b = torch.arange(batch, device=depth.device)[:, None].expand_as(col)
    rr, cc = row.clamp(0, height - 1), col.clamp(0, width - 1)
    return inside & covered[b, rr, cc] & (vertex_depth <= depth[b, rr, cc] + tol[:, None])


def _vertex_normals(vertices: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    from facezoo.geometry.mesh import vertex_normals

    return vertex_normals(vertices, tri)


class MeshRenderer(nn.Module):
    """Differentiable mesh renderer (nvdiffrast-style pipeline, any facezoo camera).

    Args:
        image_size: ``(H, W)`` pixels.
        backend: rasterizer backend (``"auto"``, ``"builtin"``, ``"nvdiffrast"``).
        cull_backface: drop back-facing triangles.
        background: default background colour (a float, a ``[C]`` sequence) used where ``forward`` gets none.
        visibility_tolerance: a vertex counts as visible when it is at most this fraction of the mesh's depth
            extent behind the z-buffer's surface at its pixel (default 2%, about 2 mm on a face).

    ``forward(vertices [B,V,3] mm, triangles [T,3], camera, colors=None [B|1,V,C], texture=None [B,3,S,S],
    uv=None [V,2], lighting=None ([B,9], [B,27] or [B,9,3]; unlit albedo when None), background=None
    (float, [C] or [B,C,H,W]), antialias=True) -> RenderOutput``. Give either ``colors`` (per-vertex
    albedo) or ``texture`` + ``uv`` (bilinear lookup, differentiable in both); with neither, a grey albedo.
    Normals are area-weighted vertex normals of the view-space mesh, renormalised per pixel. The background
    is composited before antialiasing so silhouettes blend into it.

    Example:
        >>> from facezoo.geometry.cameras import WeakPerspective
        >>> cam = WeakPerspective(torch.tensor([10.0]), torch.eye(3)[None], torch.tensor([[16.0, 16.0]]))
        >>> v = torch.tensor([[[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]]])
        >>> out = MeshRenderer((32, 32))(v, torch.tensor([[0, 1, 2]]), cam, colors=torch.ones(1, 3, 3))
        >>> out.image.shape, int(out.triangle_id[0, 16, 16])
        (torch.Size([1, 3, 32, 32]), 0)
    """

    def __init__(
        self,
        image_size: Sequence[int],
        backend: str = "auto",
        cull_backface: bool = False,
        background: float | Sequence[float] = 0.0,
        visibility_tolerance: float = 0.02,
    ) -> None:
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.backend = backend
        self.cull_backface = cull_backface
        self.background = background
        self.visibility_tolerance = float(visibility_tolerance)

    def forward(
        self,
        vertices: torch.Tensor,
        triangles: torch.Tensor,
        camera,
        colors: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        uv: torch.Tensor | None = None,
        lighting: torch.Tensor | None = None,
        background: float | Sequence[float] | torch.Tensor | None = None,
        antialias: bool = True,
    ) -> RenderOutput:
        vertices = check_tensor("vertices", vertices, ndim=3, last=3)
        batch, n_vert, _ = vertices.shape
        tri = check_tri(triangles, n_vert, vertices.device)
        height, width = self.image_size
        view = camera.view(vertices)
        pos = camera.to_clip(vertices, self.image_size)
        rast = rasterize(
            pos.float() if self.backend == "nvdiffrast" else pos,
            tri,
            self.image_size,
            backend=self.backend,
            cull_backface=self.cull_backface,
        )
        if texture is not None:
            if uv is None:
                raise ValueError("texture needs uv [V,2]")
            uv = check_tensor("uv", uv, ndim=2, last=2, device=vertices.device)
            albedo_attr = uv[None].expand(batch, -1, -1).to(vertices.dtype)
        elif colors is not None:
            colors = check_tensor("colors", colors, ndim=3, device=vertices.device)
            if colors.shape[1] != n_vert:
                raise ValueError(f"colors must be [B,{n_vert},C], got {tuple(colors.shape)}")
            albedo_attr = colors.to(vertices.dtype).expand(batch, -1, -1)
        else:
            albedo_attr = vertices.new_full((batch, n_vert, 3), 0.7)
        n_alb = albedo_attr.shape[-1]
        normals = _vertex_normals(view, tri) if lighting is not None else view[..., :0]
        vdepth = -view[..., 2:3]
        attrs = torch.cat((albedo_attr, normals, vdepth), -1)
        px = interpolate(attrs, rast, tri)  # [B,H,W,C]
        covered = rast[..., 3] > 0
        cov = covered[..., None].to(px.dtype)
        albedo = px[..., :n_alb]
        if texture is not None:
            texture = check_tensor("texture", texture, ndim=4, device=vertices.device)
            grid = torch.stack((2 * albedo[..., 0] - 1, 1 - 2 * albedo[..., 1]), -1).to(texture.dtype)
            albedo = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
            albedo = albedo.permute(0, 2, 3, 1)
        if lighting is not None:
            from facezoo.render.shading import sh_shade

            n_px = F.normalize(px[..., n_alb : n_alb + 3], dim=-1, eps=1e-12)
            shaded = sh_shade(albedo, n_px, lighting)
        else:
            shaded = albedo
        depth = px[..., -1]
        bg = self.background if background is None else background
        if isinstance(bg, torch.Tensor) and bg.ndim == 4:
            bg = bg.permute(0, 2, 3, 1).to(shaded.dtype)
        else:
            bg = torch.as_tensor(bg, dtype=shaded.dtype, device=shaded.device)
        image = cov * shaded + (1 - cov) * bg
        mask = cov
        if antialias:
            both = _antialias(torch.cat((image, mask), -1), rast, pos, tri)
            image, mask = both[..., :-1], both[..., -1:]
        extent = (vdepth.amax(dim=(1, 2)) - vdepth.amin(dim=(1, 2))).detach()
        visible = vertex_visibility(
            pos.detach(), vdepth[..., 0].detach(), depth.detach(), covered, self.visibility_tolerance * extent
        )
        return RenderOutput(
            image=image.permute(0, 3, 1, 2),
            mask=mask.permute(0, 3, 1, 2),
            depth=depth[:, None],
            visible=visible,
            triangle_id=rast[..., 3].long() - 1,
            rast=rast,
        )

"""``MeshRenderer``: camera -> clip space -> rasterize -> interpolate -> SH shading -> antialias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.render._cache import tri_int32
from facezoo.render._checks import check_tensor, check_tri
from facezoo.render.antialias import antialias as _antialias
from facezoo.render.backends import get_backend
from facezoo.render.interpolate import covered_pixels, interpolate_packed, packed_barycentrics
from facezoo.render.normals import vertex_normals
from facezoo.render.rasterize import rasterize
from facezoo.render.shade_pixels import fused_available, shade_pixels


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


class _ScatterRows(torch.autograd.Function):
    """``base [M,C]`` with rows ``pix [P]`` (unique) replaced by ``vals [P,C]``. Its backward gathers with
    advanced indexing, much faster on CPU than ``index_copy``'s ``index_select``."""

    @staticmethod
    def forward(ctx, base, pix, vals):
        ctx.save_for_backward(pix)
        ctx.base_needs = ctx.needs_input_grad[0]
        # a contiguous base outside any graph (a fresh buffer) is written in place
        inplace = not base.requires_grad and base.is_contiguous() and base._base is None
        out = base if inplace else base.clone(memory_format=torch.contiguous_format)
        out[pix] = vals.to(out.dtype)
        if inplace:
            ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (pix,) = ctx.saved_tensors
        g_base = None
        if ctx.base_needs:
            g_base = grad.clone()
            g_base[pix] = 0
        return g_base, None, grad[pix]


def _scatter_rows(base: torch.Tensor, pix: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    return _ScatterRows.apply(base, pix, vals)


def _sh_light(normals: torch.Tensor, lighting: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """``[P,3]`` SH irradiance per colour channel of the packed pixel normals ``[P,3]`` (sorted by batch
    item, ``bounds`` as in :class:`~facezoo.render.interpolate.PixelList`); ``lighting`` as in
    :func:`~facezoo.render.shading.sh_shade` (``[B,9]``, ``[B,27]`` or ``[B,3,9]``)."""
    from facezoo.render.shading import _coeffs, sh_basis

    g = _coeffs(lighting, bounds.numel() - 1).to(normals.dtype)  # [B,3,9]
    basis = sh_basis(normals)  # [P,9]
    counts = bounds.diff().tolist()
    return torch.cat([y @ gb.T for y, gb in zip(basis.split(counts), g)])


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

    Speed: with the builtin backend and Warp, rast is made without a graph and the whole per-pixel stage
    (interpolate albedo, normal and depth, renormalise, SH-shade, composite over the background) is one
    Warp pass, with a one-pass analytic backward that ends in the barycentrics' position gradient
    (:func:`~facezoo.render.shade_pixels.shade_pixels`); vertex normals and visibility are Warp passes too.
    Otherwise (texture lookup, other backends, no Warp) the same steps run as separate ops on the compact
    list of covered pixels. Both equal the dense pipeline (tested).

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
        pos = camera.view_to_clip(view, self.image_size)
        # builtin: rast without a graph; the covered pixels' (u, v) get their own, cheaper one below
        packed = get_backend(self.backend, vertices.device).name == "builtin"
        rast = rasterize(
            pos.detach() if packed else pos.float() if self.backend == "nvdiffrast" else pos,
            tri,
            self.image_size,
            backend=self.backend,
            cull_backface=self.cull_backface,
        )
        if texture is not None:
            if uv is None:
                raise ValueError("texture needs uv [V,2]")
            uv = check_tensor("uv", uv, ndim=2, last=2, device=vertices.device)
            texture = check_tensor("texture", texture, ndim=4, device=vertices.device)
        elif colors is not None:
            colors = check_tensor("colors", colors, ndim=3, device=vertices.device)
            if colors.shape[1] != n_vert or colors.shape[0] not in (1, batch):
                raise ValueError(f"colors must be [B|1,{n_vert},C], got {tuple(colors.shape)}")
        vdepth = -view[..., 2:3]
        bg = self.background if background is None else background
        n_alb = 3 if colors is None else colors.shape[-1]
        fused = texture is None and packed and fused_available(vertices.dtype)
        if fused and (lighting is None or n_alb == 3):
            albedo = colors if colors is not None else vertices.new_full((1, n_vert, 3), 0.7)
            normals = vertex_normals(view, tri) if lighting is not None else None
            base = self._base(bg, albedo.shape[-1], batch, vertices)
            both, depth = shade_pixels(pos, rast, tri_int32(tri), albedo, normals, vdepth, lighting, base)
        else:
            both, depth = self._unfused(view, pos, tri, rast, colors, texture, uv, lighting, bg, packed)
        both = both.view(batch, height, width, -1)
        if antialias:
            both = _antialias(both, rast, pos, tri)
        image, mask = both.split((both.shape[-1] - 1, 1), dim=-1)  # backward: one cat
        depth = depth.view(batch, height, width)
        extent = (vdepth.amax(dim=(1, 2)) - vdepth.amin(dim=(1, 2))).detach()
        tol = self.visibility_tolerance * extent
        if fused:  # the same rule in one Warp pass
            from facezoo.render.backends.builtin import visibility_warp

            d = vertices.dtype
            visible = visibility_warp(
                pos.detach().contiguous(),
                vdepth[..., 0].detach().contiguous(),
                depth.detach().to(d).contiguous(),
                rast.to(d).contiguous(),
                tol.to(d).contiguous(),
            )
        else:
            covered = rast[..., 3] > 0
            visible = vertex_visibility(pos.detach(), vdepth[..., 0].detach(), depth.detach(), covered, tol)
        return RenderOutput(
            image=image.permute(0, 3, 1, 2),
            mask=mask.permute(0, 3, 1, 2),
            depth=depth[:, None],
            visible=visible,
            triangle_id=rast[..., 3].long() - 1,
            rast=rast,
        )

    def _base(self, bg, n_ch: int, batch: int, like: torch.Tensor) -> torch.Tensor:
        """The background as ``[B*H*W,C]`` (an expanded view where it is a constant)."""
        height, width = self.image_size
        n_pix = batch * height * width
        if isinstance(bg, torch.Tensor) and bg.ndim == 4:
            base = bg.permute(0, 2, 3, 1).to(like.dtype).expand(batch, height, width, n_ch)
            return base.reshape(n_pix, n_ch)
        return torch.as_tensor(bg, dtype=like.dtype, device=like.device).expand(n_pix, n_ch)

    def _unfused(self, view, pos, tri, rast, colors, texture, uv, lighting, bg, packed):
        """The per-pixel stage as separate ops on the packed pixel list (texture lookup, backends other than
        builtin, no Warp): ``([B*H*W,C+1] colour + coverage, [B*H*W] depth)``."""
        batch, n_vert = view.shape[:2]
        height, width = self.image_size
        if texture is not None:
            albedo_attr = uv[None].expand(batch, -1, -1).to(view.dtype)
        elif colors is not None:
            albedo_attr = colors.to(view.dtype).expand(batch, -1, -1)
        else:
            albedo_attr = view.new_full((batch, n_vert, 3), 0.7)
        n_alb = albedo_attr.shape[-1]
        normals = vertex_normals(view, tri) if lighting is not None else view[..., :0]
        attrs = torch.cat((albedo_attr, normals, -view[..., 2:3]), -1)
        # everything per pixel below works on the compact list of covered pixels only
        pixels = covered_pixels(rast)
        uv_bary = packed_barycentrics(pos, tri, rast, pixels) if packed else None
        px = interpolate_packed(attrs, rast.to(attrs.dtype), tri, pixels, uv=uv_bary)  # [P,C]
        n_pix = batch * height * width
        albedo = px[:, :n_alb]
        if texture is not None:
            uv_img = _scatter_rows(px.new_zeros(n_pix, n_alb), pixels.pix, albedo)
            uv_img = uv_img.view(batch, height, width, n_alb)
            grid = torch.stack((2 * uv_img[..., 0] - 1, 1 - 2 * uv_img[..., 1]), -1).to(texture.dtype)
            albedo = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
            albedo = albedo.permute(0, 2, 3, 1).reshape(n_pix, -1)[pixels.pix].to(px.dtype)
        if lighting is not None:
            n_px = F.normalize(px[:, n_alb : n_alb + 3], dim=-1, eps=1e-12)
            shaded = albedo * _sh_light(n_px, lighting, pixels.bounds)
        else:
            shaded = albedo
        n_ch = shaded.shape[-1]
        base = self._base(bg, n_ch, batch, shaded)
        # image and coverage mask side by side (C + 1 channels), background where nothing is covered
        if base.requires_grad:
            base = torch.cat((base, shaded.new_zeros(n_pix, 1)), -1)
        else:  # one pass over the image instead of cat + clone
            buf = shaded.new_empty(n_pix, n_ch + 1)
            buf[:, :n_ch] = base
            buf[:, n_ch] = 0
            base = buf
        fg = torch.cat((shaded, shaded.new_ones(shaded.shape[0], 1)), -1)
        both = _scatter_rows(base, pixels.pix, fg)
        depth = _scatter_rows(px.new_zeros(n_pix, 1), pixels.pix, px[:, -1:])
        return both, depth

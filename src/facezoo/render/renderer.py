"""``MeshRenderer``: camera -> clip space -> rasterize -> interpolate -> SH shading -> antialias."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.geometry.mesh import vertex_normals
from facezoo.render._cache import tri_int32
from facezoo.render._checks import check_resolution, check_tensor, check_tri, describe
from facezoo.render.antialias import antialias_unchecked
from facezoo.render.backends import get_backend
from facezoo.render.backends.builtin import rasterize_with_aux
from facezoo.render.interpolate import covered_pixels, interpolate_packed, packed_barycentrics
from facezoo.render.rasterize import rasterize
from facezoo.render.shade_pixels import fused_available, shade_pixels
from facezoo.render.shading import sh_basis, sh_coefficients
from facezoo.render.visibility import vertex_visibility, visible_vertices

__all__ = ["MeshRenderer", "RenderOutput", "vertex_visibility"]


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
    g = sh_coefficients(lighting, bounds.numel() - 1, "lighting").to(normals.dtype)  # [B,3,9]
    basis = sh_basis(normals)  # [P,9]
    counts = bounds.diff().tolist()
    return torch.cat([y @ gb.T for y, gb in zip(basis.split(counts), g)])


class MeshRenderer(nn.Module):
    """Differentiable mesh renderer (nvdiffrast-style pipeline, any facezoo camera).

    Args:
        image_size: ``(H, W)`` pixels, or an int S for ``(S, S)``.
        backend: rasterizer backend (``"auto"``, ``"builtin"``, ``"nvdiffrast"``).
        cull_backface: drop back-facing triangles.
        background: default background colour (a float, a ``[C]`` sequence) used where ``forward`` gets none.
        visibility_tolerance: a vertex counts as visible when it is at most this fraction of the mesh's depth
            extent behind the z-buffer's surface at its pixel (default 2%, about 2 mm on a face).

    ``forward(vertices, triangles, camera, colors=None, texture=None, uv=None, lighting=None, background=None,
    antialias=True) -> RenderOutput``:

    - ``vertices [B,V,3]`` model-space mm, float32 or float64 (the image comes in the vertices' dtype; a
      camera of the other float dtype is cast to it); ``triangles [T,3]`` int; ``camera`` a facezoo camera
      (batch 1 or B).
    - Albedo, one of: ``colors [B|1,V,C]`` per-vertex (any C when unlit, 3 when lit); or a UV texture
      ``texture [B|1,C,H_t,W_t]`` (channels first, any H_t x W_t, e.g. the nonlinear 3DMM's 192 x 224) with
      ``uv [V,2]`` or ``[B,V,2]`` texture coordinates (MorphableModel.uv's convention: ``(0, 0)`` the
      bottom-left corner of the texture, v up), sampled bilinearly per pixel (differentiable in the texture,
      the uv and the vertices); or neither: grey 0.7.
    - ``lighting``: SH coefficients ``[B,9]``, ``[B,27]`` or ``[B,3,9]`` (see
      :func:`~facezoo.render.sh_shade`), None for unlit albedo.
    - ``background``: a float, ``[C]`` or an image ``[B,C,H,W]``; composited before antialiasing, so
      silhouettes blend into it.

    Normals are area-weighted vertex normals of the view-space mesh, renormalised per pixel.

    Paths (equal results, tested): with the builtin backend and the Warp kernels, rast is made without a graph
    and, for per-vertex colours, the whole per-pixel stage (interpolate albedo, normal and depth, renormalise,
    SH-shade, composite over the background) is one Warp pass with a one-pass analytic backward ending in the
    barycentrics' position gradient (:func:`~facezoo.render.shade_pixels.shade_pixels`). Textured meshes,
    other backends and the PyTorch kernels run the same steps as separate ops on the compact list of covered
    pixels (the texture lookup is ``grid_sample`` at the interpolated uv).

    Example:
        >>> from facezoo.geometry.cameras import WeakPerspective
        >>> cam = WeakPerspective(torch.tensor([10.0]), torch.eye(3)[None], torch.tensor([[16.0, 16.0]]))
        >>> v = torch.tensor([[[-1.0, -1, 0], [1, -1, 0], [0, 1, 0]]])
        >>> out = MeshRenderer(32)(v, torch.tensor([[0, 1, 2]]), cam, colors=torch.ones(1, 3, 3))
        >>> out.image.shape, int(out.triangle_id[0, 16, 16])
        (torch.Size([1, 3, 32, 32]), 0)
        >>> uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
        >>> tex = torch.linspace(0, 1, 224).expand(1, 3, 192, 224)  # 192 x 224, brighter to the right
        >>> out = MeshRenderer(32)(v, torch.tensor([[0, 1, 2]]), cam, texture=tex, uv=uv, antialias=False)
        >>> img = out.image
        >>> bool(img[0, 0, 18, 12] < img[0, 0, 18, 20])  # u grows to the right of the image too
        True
    """

    def __init__(
        self,
        image_size: int | Sequence[int],
        backend: str = "auto",
        cull_backface: bool = False,
        background: float | Sequence[float] = 0.0,
        visibility_tolerance: float = 0.02,
    ) -> None:
        super().__init__()
        self.image_size = check_resolution(image_size, "image_size")
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
        vertices = check_tensor(
            "vertices", vertices, ndim=3, last=3, dtypes=(torch.float32, torch.float64), want="[B,V,3]"
        )
        batch, n_vert, _ = vertices.shape
        tri = check_tri(triangles, n_vert, vertices.device, name="triangles")
        colors, texture, uv = self._check_albedo(vertices, colors, texture, uv, lighting)
        if getattr(camera, "dtype", vertices.dtype) != vertices.dtype and hasattr(camera, "to"):
            camera = camera.to(dtype=vertices.dtype)  # render in the vertices' dtype
        height, width = self.image_size
        view = camera.view(vertices)
        pos = camera.view_to_clip(view, self.image_size)
        # builtin: rast without a graph (the covered pixels' (u, v) get their own, cheaper one) and the
        # rasterizer's by-products for antialias
        packed = get_backend(self.backend, vertices.device).name == "builtin"
        if packed:
            rast, aux = rasterize_with_aux(pos, tri, self.image_size, self.cull_backface)
        else:
            rast = rasterize(
                pos, tri, self.image_size, backend=self.backend, cull_backface=self.cull_backface
            )
            aux = None
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
            both = antialias_unchecked(both, rast, pos, tri, aux)
        image, mask = both.split((both.shape[-1] - 1, 1), dim=-1)  # backward: one cat
        depth = depth.view(batch, height, width)
        extent = (vdepth.amax(dim=(1, 2)) - vdepth.amin(dim=(1, 2))).detach()
        visible = visible_vertices(pos, vdepth[..., 0], depth, rast, self.visibility_tolerance * extent)
        return RenderOutput(
            image=image.permute(0, 3, 1, 2),
            mask=mask.permute(0, 3, 1, 2),
            depth=depth[:, None],
            visible=visible,
            triangle_id=rast[..., 3].long() - 1,
            rast=rast,
        )

    @staticmethod
    def _check_albedo(vertices, colors, texture, uv, lighting):
        """``(colors, texture, uv)`` checked against the vertices (see the class docstring for the rules)."""
        batch, n_vert = vertices.shape[:2]
        device = vertices.device
        if texture is not None:
            texture = check_tensor(
                "texture", texture, ndim=4, device=device, want="[B,C,H,W] (channels first)"
            )
            if not texture.is_floating_point():
                raise TypeError(f"texture must be a float tensor [B,C,H,W], got {describe(texture)}")
            c, last = texture.shape[1], texture.shape[-1]
            if last in (1, 3, 4) and c not in (1, 3, 4):
                raise ValueError(
                    f"texture must be [B,C,H,W] (channels first), got {describe(texture)}, which looks "
                    "channels-last [B,H,W,C]: pass texture.permute(0, 3, 1, 2)"
                )
            if texture.shape[0] not in (1, batch):
                raise ValueError(
                    f"texture batch must be 1 or {batch} (the vertices'), got {describe(texture)}"
                )
            if lighting is not None and c != 3:
                raise ValueError(f"a lit texture must have 3 channels (RGB albedo), got {describe(texture)}")
            if uv is None:
                raise ValueError(f"texture needs uv [V,2] (V = {n_vert}) texture coordinates")
            uv = check_tensor("uv", uv, last=2, device=device, want=f"[{n_vert},2] or [B,{n_vert},2]")
            if (
                not uv.is_floating_point()
                or uv.ndim not in (2, 3)
                or uv.shape[-2] != n_vert
                or (uv.ndim == 3 and uv.shape[0] not in (1, batch))
            ):
                raise ValueError(f"uv must be float [{n_vert},2] or [B,{n_vert},2], got {describe(uv)}")
            if colors is not None:
                raise ValueError("give either colors or texture + uv, not both")
        elif colors is not None:
            colors = check_tensor("colors", colors, ndim=3, device=device, want=f"[B|1,{n_vert},C]")
            if (
                colors.shape[1] != n_vert
                or colors.shape[0] not in (1, batch)
                or not colors.is_floating_point()
            ):
                raise ValueError(f"colors must be float [B|1,{n_vert},C], got {describe(colors)}")
            if lighting is not None and colors.shape[-1] != 3:
                raise ValueError(f"lit colors must have 3 channels (RGB albedo), got {describe(colors)}")
        return colors, texture, uv

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
            albedo_attr = (uv if uv.ndim == 3 else uv[None]).expand(batch, -1, -1).to(view.dtype)
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
            tex = texture.expand(batch, -1, -1, -1)
            albedo = F.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
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

"""``interpolate``: per-vertex attributes -> per-pixel values with the rasterizer's barycentrics.

Only covered pixels are touched: a compact pixel list (``nonzero`` of the id channel) is interpolated by a
custom autograd Function with an analytic backward (Warp kernels where Warp imports, else index gathers
and ``index_add_``), so neither the forward nor the backward pays for empty pixels or for autograd
through gathers. Double backward is not supported (the backward is ``once_differentiable``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable

from facezoo.render._cache import tri_int32
from facezoo.render._checks import check_rast, check_tensor


class PixelList(NamedTuple):
    """The covered pixels of a rast, in row-major (batch, row, column) order: pix ``[P]`` long, flat
    indices into ``[B*H*W]``; bounds ``[B+1]`` long, where each batch item starts in the list."""

    pix: torch.Tensor
    bounds: torch.Tensor


def covered_pixels(rast: torch.Tensor) -> PixelList:
    """The :class:`PixelList` of ``rast [B,H,W,4]``."""
    batch, height, width = rast.shape[:3]
    pix = (rast[..., 3].detach().reshape(-1) > 0).nonzero()[:, 0]
    starts = torch.arange(batch + 1, device=rast.device) * (height * width)
    return PixelList(pix, torch.searchsorted(pix, starts))


def _use_warp(attr: torch.Tensor) -> bool:
    from facezoo.render.backends.builtin import warp_available

    return USE_WARP and attr.dtype in (torch.float32, torch.float64) and warp_available()


#: set to False to use the pure-PyTorch path (tests compare the two)
USE_WARP = True


def _rows(rast_flat: torch.Tensor, pix: torch.Tensor, tri: torch.Tensor, bounds: torch.Tensor, n_vert: int):
    """``[P,3]`` long rows of ``attr [N,C]`` for the covered pixels (PyTorch path)."""
    rows = tri.long()[rast_flat[pix, 3].long() - 1]
    if n_vert > 0:
        item = torch.searchsorted(bounds, torch.arange(pix.shape[0], device=pix.device), right=True) - 1
        rows = rows + (item * n_vert)[:, None]
    return rows


class _Interpolate(torch.autograd.Function):
    """``(attr_flat [N,C], rast_flat [M,4], pix [P], tri [T,3] int32, bounds [B+1], n_vert, full)`` ->
    ``[M,C]`` (full: zeros on empty pixels) or ``[P,C]`` (packed). ``n_vert`` > 0: attr is per batch item."""

    @staticmethod
    def forward(ctx, attr_flat, rast_flat, pix, tri, bounds, n_vert, full):
        attr_flat = attr_flat.detach().contiguous()
        rast_a = rast_flat.detach().to(attr_flat.dtype).contiguous()
        n_out = rast_flat.shape[0] if full else pix.shape[0]
        if _use_warp(attr_flat):
            from facezoo.render.backends.builtin import interpolate_fwd_warp

            alloc = torch.zeros if full else torch.empty
            out = alloc((n_out, attr_flat.shape[1]), dtype=attr_flat.dtype, device=attr_flat.device)
            out = interpolate_fwd_warp(attr_flat, rast_a, pix, tri, bounds.tolist(), n_vert, out, full)
        else:
            a = attr_flat[_rows(rast_a, pix, tri, bounds, n_vert)]  # [P,3,C]
            a2 = a[:, 2]
            uv = rast_a[pix, :2]
            vals = a2 + uv[:, 0:1] * (a[:, 0] - a2) + uv[:, 1:2] * (a[:, 1] - a2)
            out = attr_flat.new_zeros(n_out, attr_flat.shape[1]).index_copy_(0, pix, vals) if full else vals
        ctx.save_for_backward(attr_flat, rast_a, pix, tri, bounds)
        ctx.info = (n_vert, full, rast_flat.dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        attr_flat, rast_a, pix, tri, bounds = ctx.saved_tensors
        n_vert, full, rast_dtype = ctx.info
        want_attr = ctx.needs_input_grad[0]
        grad = grad.to(attr_flat.dtype).contiguous()
        if _use_warp(attr_flat):
            from facezoo.render.backends.builtin import interpolate_bwd_warp

            g_attr, g_rast = interpolate_bwd_warp(
                attr_flat, rast_a, pix, tri, bounds.tolist(), n_vert, grad, full, want_attr
            )
        else:
            g = grad[pix] if full else grad
            rows = _rows(rast_a, pix, tri, bounds, n_vert)
            a = attr_flat[rows]
            a2 = a[:, 2]
            uv = rast_a[pix, :2]
            g_rast = torch.zeros_like(rast_a)
            g_rast[pix, 0] = (g * (a[:, 0] - a2)).sum(-1)
            g_rast[pix, 1] = (g * (a[:, 1] - a2)).sum(-1)
            g_attr = None
            if want_attr:
                w = torch.cat((uv, 1 - uv.sum(-1, keepdim=True)), -1)  # [P,3]
                g_attr = torch.zeros_like(attr_flat).index_add_(
                    0, rows.reshape(-1), (w[:, :, None] * g[:, None, :]).reshape(-1, g.shape[1])
                )
        g_rast = g_rast.to(rast_dtype) if ctx.needs_input_grad[1] else None
        return (g_attr if want_attr else None), g_rast, None, None, None, None, None


def _apply(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor, pixels: PixelList, full: bool):
    batch = rast.shape[0]
    n_vert, n_ch = attr.shape[1], attr.shape[2]
    per_item = n_vert if attr.shape[0] == batch and batch > 1 else 0
    return _Interpolate.apply(
        attr.reshape(-1, n_ch),
        rast.reshape(-1, 4),
        pixels.pix,
        tri_int32(tri),
        pixels.bounds,
        per_item,
        full,
    )


class _PackedBarycentrics(torch.autograd.Function):
    """``(pos [B,V,4], tri32, rast [B,H,W,4], pix, bounds) -> [P,2]`` rast's (u, v) at the covered
    pixels, with the analytic gradient to ``pos`` computed on those pixels only."""

    @staticmethod
    def forward(ctx, pos, tri32, rast, pix, bounds):
        ctx.save_for_backward(pos, tri32, rast, pix, bounds)
        return rast.detach().reshape(-1, 4)[pix, :2].to(pos.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        pos, tri32, rast, pix, bounds = ctx.saved_tensors
        from facezoo.render.backends.builtin import barycentric_grad_packed_warp, warp_available

        if warp_available() and USE_WARP:
            gpos = barycentric_grad_packed_warp(pos, tri32, rast, pix, bounds.tolist(), grad)
        else:
            from facezoo.render.backends.builtin_backend import barycentric_backward

            full = rast.new_zeros(rast.shape).reshape(-1, 4)
            full[pix, :2] = grad.to(rast.dtype)
            gpos = barycentric_backward(pos.detach(), tri32, rast.detach(), full.view(rast.shape))
        return gpos.to(pos.dtype), None, None, None, None


def packed_barycentrics(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, pixels: PixelList):
    """``[P,2]``: the builtin rasterizer's perspective-correct (u, v) of ``rast`` (computed from ``pos
    [B,V,4]`` and ``tri``) at the covered ``pixels``, differentiable w.r.t. ``pos`` without a full-image
    gradient. Gives :func:`interpolate_packed` position gradients when rast itself was made without."""
    return _PackedBarycentrics.apply(pos, tri_int32(tri), rast, pixels.pix, pixels.bounds)


def interpolate_packed(
    attr: torch.Tensor,
    rast: torch.Tensor,
    tri: torch.Tensor,
    pixels: PixelList,
    uv: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[P,C]`` attribute values at the covered pixels ``pixels`` (from :func:`covered_pixels`) of
    ``rast``; ``attr`` is ``[B|1,V,C]`` float32/float64. Differentiable w.r.t. ``attr`` and rast's (u, v),
    or w.r.t. ``uv [P,2]`` (e.g. :func:`packed_barycentrics`) used instead of rast's (u, v) when given."""
    if uv is None:
        return _apply(attr, rast, tri, pixels, full=False)
    batch = rast.shape[0]
    n_vert, n_ch = attr.shape[1], attr.shape[2]
    per_item = n_vert if attr.shape[0] == batch and batch > 1 else 0
    rest = rast.detach().reshape(-1, 4)[pixels.pix, 2:].to(uv.dtype)
    packed = torch.cat((uv, rest), -1)  # a [P,4] "rast" of the covered pixels only
    # with pix = arange(P) and per-item offsets computed from bounds, the kernels see one row per pixel
    ident = torch.arange(packed.shape[0], device=packed.device)
    return _Interpolate.apply(
        attr.reshape(-1, n_ch), packed, ident, tri_int32(tri), pixels.bounds, per_item, False
    )


def interpolate(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Interpolate vertex attributes over the rasterized triangles (nvdiffrast's ``interpolate``).

    Args:
        attr: ``[B,V,C]`` or ``[1,V,C]`` (shared by the batch) per-vertex attributes, float32 or float64.
        rast: ``[B,H,W,4]`` from :func:`rasterize`.
        tri: ``[T,3]`` int32/int64, the triangles given to :func:`rasterize`.

    Returns:
        ``[B,H,W,C]`` in attr's dtype: ``u * a0 + v * a1 + (1 - u - v) * a2`` of the pixel's triangle,
        zeros on empty pixels. Differentiable w.r.t. ``attr`` and, through rast's (u, v), w.r.t. the
        positions given to ``rasterize`` (analytic backward over the covered pixels only; no double
        backward).

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
    batch, height, width = rast.shape[:3]
    if attr.shape[0] not in (1, batch):
        raise ValueError(f"attr batch must be 1 or {batch} (rast's), got shape {tuple(attr.shape)}")
    out = _apply(attr, rast, tri, covered_pixels(rast), full=True)
    return out.view(batch, height, width, attr.shape[2])

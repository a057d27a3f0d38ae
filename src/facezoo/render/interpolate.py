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
from facezoo.render._checks import check_rast, check_rast_ids, check_tensor, check_tri, describe
from facezoo.render._runtime import (
    active_kernels,
    dispatch,
    launch,
    loaded_kernels,
    per_thread_buffers,
    sum_buffers,
    threads,
    use_kernels,
    use_warp,
    warp_device,
)
from facezoo.render.backends.builtin import barycentric_grad_packed


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


def _interp_jobs(bounds: list[int], n_vert: int, n_threads: int) -> list[list[tuple[int, int, int]]]:
    """Per thread, a list of ``(p0, p1, row offset)`` launches: per batch item when the attributes are per
    item (``n_vert`` > 0; whole items per thread, so the gradient rows never race), else an even split."""
    total = bounds[-1]
    if n_vert == 0:
        return [[(total * i // n_threads, total * (i + 1) // n_threads, 0)] for i in range(n_threads)]
    jobs: list[list[tuple[int, int, int]]] = [[] for _ in range(n_threads)]
    for b in range(len(bounds) - 1):
        owner = min(n_threads - 1, (bounds[b] + bounds[b + 1]) * n_threads // (2 * max(total, 1)))
        jobs[owner].append((bounds[b], bounds[b + 1], b * n_vert))
    return [j for j in jobs if j]


def _launch_runs(kernel, attr, rast, pix, tri, full, bounds, n_vert, named, per_launch) -> None:
    """Launch ``kernel`` over the covered pixels in :func:`_interp_jobs`' runs: ``named`` holds the arguments
    shared by every launch, ``per_launch(job index, p0, p1)`` those of the run ``[p0, p1)`` (packed rows are
    a launch's thread ids: a run gets its slice of the packed arrays); the run's pixels go as one
    ``kernels.interp.PIXELS`` struct."""
    k = loaded_kernels()
    wp = k.wp
    px_type = k.interp.PIXELS[wp.float64 if rast.dtype == torch.float64 else wp.float32]
    wrast = wp.from_torch(rast)
    wtri = wp.from_torch(tri, dtype=wp.vec3i)
    wdev, _ = warp_device(attr.device)
    jobs = _interp_jobs(bounds, n_vert, threads(attr.device))

    def run(job: tuple[int, list[tuple[int, int, int]]]) -> None:
        j, todo = job
        for p0, p1, off in todo:
            if p1 > p0:
                px = px_type()
                px.rast, px.tri, px.off, px.full = wrast, wtri, off, int(full)
                px.pix = wp.from_torch(pix[p0:p1])
                launch(kernel, p1 - p0, wdev, **named, **per_launch(j, p0, p1), px=px)

    dispatch(run, list(enumerate(jobs)), pix.shape[0] * attr.shape[1], attr.device)


def _fwd_warp(attr, rast, pix, tri, bounds: list[int], n_vert: int, out, full: bool) -> torch.Tensor:
    """Interpolate ``attr [N,C]`` at the covered pixels ``pix [P]`` (int64 flat indices into ``rast [M,4]``,
    attr's dtype; ``bounds`` = where each batch item starts, plus P) of ``tri [T,3]`` int32 into ``out``
    (``[M,C]`` zeros when ``full``, else ``[P,C]``). ``n_vert`` > 0: attr holds one block of rows per item."""
    k = loaded_kernels()
    wp = k.wp
    named = dict(attr=wp.from_torch(attr))
    wout = wp.from_torch(out)

    def per_launch(j: int, p0: int, p1: int) -> dict:
        return {"out": wout if full else wp.from_torch(out[p0:p1])}

    _launch_runs(k.interp.interp_fwd_kernel, attr, rast, pix, tri, full, bounds, n_vert, named, per_launch)
    return out


def _bwd_warp(attr, rast, pix, tri, bounds: list[int], n_vert: int, grad, full: bool, want_attr: bool):
    """Gradients ``(grad_attr [N,C], grad_rast [M,4])`` of :func:`_fwd_warp` (grad_rast is zero but in its
    (u, v) channels at the covered pixels). Threads own whole items when the attributes are per item; shared
    attributes get one gradient buffer per thread, summed afterwards."""
    k = loaded_kernels()
    wp = k.wp
    grad_rast = torch.zeros(rast.shape, dtype=rast.dtype, device=rast.device)
    n_jobs = len(_interp_jobs(bounds, n_vert, threads(attr.device)))
    buffers = per_thread_buffers(attr, n_jobs, shared=n_vert == 0, want=want_attr)
    named = dict(attr=wp.from_torch(attr), want_attr=int(want_attr), grad_rast=wp.from_torch(grad_rast))
    wgrad = wp.from_torch(grad)

    def per_launch(j: int, p0: int, p1: int) -> dict:
        g = wgrad if full else wp.from_torch(grad[p0:p1])
        return {"grad": g, "grad_attr": wp.from_torch(buffers[j])}

    _launch_runs(k.interp.interp_bwd_kernel, attr, rast, pix, tri, full, bounds, n_vert, named, per_launch)
    return sum_buffers(buffers), grad_rast


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
        ctx.warp = use_warp(attr_flat)
        if ctx.warp:
            alloc = torch.zeros if full else torch.empty
            out = alloc((n_out, attr_flat.shape[1]), dtype=attr_flat.dtype, device=attr_flat.device)
            out = _fwd_warp(attr_flat, rast_a, pix, tri, bounds.tolist(), n_vert, out, full)
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
        if ctx.warp:
            g_attr, g_rast = _bwd_warp(
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
        ctx.kernels = active_kernels()
        return rast.detach().reshape(-1, 4)[pix, :2].to(pos.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        pos, tri32, rast, pix, bounds = ctx.saved_tensors
        with use_kernels(ctx.kernels):
            gpos = barycentric_grad_packed(pos, tri32, rast, pix, bounds, grad)
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
    attr = check_tensor("attr", attr, ndim=3, device=rast.device, want="[B,V,C] or [1,V,C]")
    if not attr.is_floating_point():
        raise TypeError(f"attr must be a float tensor, got {describe(attr)}")
    batch, height, width = rast.shape[:3]
    if attr.shape[0] not in (1, batch):
        raise ValueError(f"attr batch must be 1 or {batch} (rast's), got {describe(attr)}")
    tri = check_tri(tri, attr.shape[1], rast.device)
    pixels = covered_pixels(rast)
    check_rast_ids(rast, tri.shape[0], covered_ids=rast.reshape(-1, 4)[pixels.pix, 3])
    out = _apply(attr, rast, tri, pixels, full=True)
    return out.view(batch, height, width, attr.shape[2])

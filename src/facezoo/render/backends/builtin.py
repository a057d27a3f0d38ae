"""The ``"builtin"`` backend: exact rasterization with float64 arithmetic (Warp kernels, or the same algorithm
in pure PyTorch; see :mod:`facezoo.render._runtime` for the switch) and the analytic derivative of the
perspective-correct barycentrics and z/w w.r.t. the clip-space positions.

Both rasterizers compute the same thing (see :mod:`facezoo.render.kernels.raster`): a z-buffer of packed
``(quantised z/w, triangle)`` int64 keys reduced with min, then a per-pixel resolve of the winning triangle's
perspective-correct barycentrics. Ties in depth go to the lower triangle index. rast comes back in the dtype
of ``pos``. The Warp rasterizer also returns, as a by-product, what antialias needs of the same positions
(:class:`RasterAux`): :class:`~facezoo.render.MeshRenderer` passes it on explicitly, and the public
:func:`~facezoo.render.antialias` finds it with :func:`recall_aux` (a table keyed by the rast tensor, each
entry dropped with its rast, valid only for the very, unmodified positions), or recomputes it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from facezoo.render._cache import recall, remember, tri_int32
from facezoo.render._runtime import (
    BATCH,
    dispatch,
    item_chunks,
    launch,
    launch_items,
    loaded_kernels,
    pixel_spans,
    warp_device,
    warp_kernels,
)
from facezoo.render.backends import Backend

EMPTY_KEY = torch.iinfo(torch.int64).max
DEPTH_SCALE = 2147483648.0
_TRI_SHIFT = 4294967296


class RasterAux(NamedTuple):
    """By-products of the Warp rasterizer for antialias: ``scr [B,V,4]`` float64 projected vertices
    (pixel-index x, y, z/w, w) and ``orient [B,T]`` int8 screen orientations (-1, 0, 1; 2 where a vertex has
    w <= 0)."""

    scr: torch.Tensor
    orient: torch.Tensor


def rasterize_warp(
    pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool
) -> tuple[torch.Tensor, RasterAux]:
    """Warp implementation. ``pos [B,V,4]`` float32/float64 contiguous, ``tri [T,3]`` int32 contiguous ->
    (rast ``[B,H,W,4]`` in pos's dtype, :class:`RasterAux`); arithmetic in float64. One launch per batch item
    and pass; CPU threads own whole items (their z-buffer rows)."""
    k = loaded_kernels()
    wp = k.wp
    batch, n_vert = pos.shape[:2]
    n_tri = tri.shape[0]
    dev = pos.device
    zbuf = torch.full((batch, height, width), EMPTY_KEY, dtype=torch.int64, device=dev)
    scr = torch.empty((batch, n_vert, 4), dtype=torch.float64, device=dev)
    orient = torch.empty((batch, n_tri), dtype=torch.int8, device=dev)
    out = torch.empty((batch, height, width, 4), dtype=pos.dtype, device=dev)
    wpos, wtri = wp.from_torch(pos), wp.from_torch(tri, dtype=wp.vec3i)
    wscr, wz = wp.from_torch(scr, dtype=wp.vec4d), wp.from_torch(zbuf)
    span, n_span = pixel_spans(dev, height, width)
    size = {"height": height, "width": width}
    launch_items(
        [
            (k.raster.project_kernel, n_vert, dict(pos=wpos, **size, b=BATCH, scr=wscr)),
            (
                k.raster.zbuffer_kernel,
                n_tri,
                dict(
                    pos=wpos,
                    scr=wscr,
                    tri=wtri,
                    **size,
                    cull=int(cull),
                    b=BATCH,
                    zbuf=wz,
                    orient=wp.from_torch(orient),
                ),
            ),
            (
                k.raster.resolve_kernel,
                n_span,
                dict(pos=wpos, tri=wtri, zbuf=wz, **size, span=span, b=BATCH, out=wp.from_torch(out)),
            ),
        ],
        batch,
        batch * n_tri,
        dev,
    )
    return out, RasterAux(scr, orient)


def _pixel_ndc(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    return 1.0 - (2 * rows + 1) / height, (2 * cols + 1) / width - 1.0


def rasterize_torch(
    pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool
) -> torch.Tensor:
    """Pure-PyTorch implementation of the same algorithm (fallback; also the reference the Warp kernels are
    tested against). Enumerates each triangle's pixel bounding box with ``repeat_interleave`` and reduces the
    packed keys with ``scatter_reduce(amin)``."""
    batch, n_vert, _ = pos.shape
    device = pos.device
    tri = tri.long()
    n_tri = tri.shape[0]
    v = pos[:, tri]  # [B,T,3,4]
    xyw = v[..., [0, 1, 3]]  # [B,T,3,3] homogeneous 2D vertices
    w = v[..., 3]
    n = torch.stack(
        [
            torch.linalg.cross(xyw[:, :, 1], xyw[:, :, 2]),
            torch.linalg.cross(xyw[:, :, 2], xyw[:, :, 0]),
            torch.linalg.cross(xyw[:, :, 0], xyw[:, :, 1]),
        ],
        dim=2,
    )  # [B,T,3(edge),3]
    det = (xyw[:, :, 0] * n[:, :, 0]).sum(-1)
    keep = (det != 0) & (w > 0).any(-1)
    if cull:
        keep &= det > 0
    all_front = (w > 0).all(-1)
    safe_w = torch.where(w > 0, w, torch.ones_like(w))
    xs = (v[..., 0] / safe_w + 1.0) * width * 0.5 - 0.5
    ys = (1.0 - v[..., 1] / safe_w) * height * 0.5 - 0.5
    # bounding boxes in pixel-index coordinates; full screen where a vertex is behind the eye
    c0 = torch.where(all_front, torch.ceil(xs.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=width)
    c1 = torch.where(all_front, torch.floor(xs.amax(-1) + 1e-9), width - 1.0).clamp(min=-1.0, max=width - 1.0)
    r0 = torch.where(all_front, torch.ceil(ys.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=height)
    r1 = torch.where(all_front, torch.floor(ys.amax(-1) + 1e-9), height - 1.0).clamp(
        min=-1.0, max=height - 1.0
    )
    bw = (c1 - c0 + 1).clamp(min=0).long()
    bh = (r1 - r0 + 1).clamp(min=0).long()
    count = torch.where(keep, bw * bh, 0).reshape(-1)
    zbuf = torch.full((batch * height * width,), EMPTY_KEY, dtype=torch.int64, device=device)
    total = int(count.sum())
    if total > 0:
        face = torch.repeat_interleave(torch.arange(batch * n_tri, device=device), count)
        start = torch.cumsum(count, 0) - count
        local = torch.arange(total, device=device) - start[face]
        bwf = bw.reshape(-1)[face]
        col = c0.reshape(-1)[face].long() + local % bwf
        row = r0.reshape(-1)[face].long() + local // bwf
        p = torch.stack(
            [
                (2 * col + 1) / width - 1.0,
                1.0 - (2 * row + 1) / height,
                torch.ones_like(col, dtype=torch.float64),
            ],
            dim=-1,
        )
        nf = n.reshape(batch * n_tri, 3, 3)[face] / det.reshape(-1)[face, None, None]
        lam = (nf * p[:, None, :]).sum(-1)  # [P,3]
        inside = (lam >= 0).all(-1) & (lam.sum(-1) > 0)
        zw = (lam * v[..., 2].reshape(batch * n_tri, 3)[face]).sum(-1)
        inside &= (zw >= -1.0) & (zw <= 1.0)
        b = face // n_tri
        t = face % n_tri
        q = ((zw * 0.5 + 0.5) * DEPTH_SCALE).long()
        key = q * _TRI_SHIFT + t
        pix = (b * height + row) * width + col
        zbuf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
    return resolve_torch(pos, tri, zbuf.view(batch, height, width))


def resolve_torch(pos: torch.Tensor, tri: torch.Tensor, zbuf: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentrics of the winning triangles of a key z-buffer ``[B,H,W]`` -> rast ``[B,H,W,4]``."""
    batch, height, width = zbuf.shape
    covered = zbuf != EMPTY_KEY
    t = torch.where(covered, zbuf % _TRI_SHIFT, 0)
    b = torch.arange(batch, device=pos.device)[:, None, None].expand_as(t)
    v = pos[b[..., None], tri[t]]  # [B,H,W,3,4]
    xyw = v[..., [0, 1, 3]]
    ny, nx = _pixel_ndc(height, width, pos.device)
    p = torch.stack(
        torch.broadcast_tensors(
            nx[None, :], ny[:, None], torch.ones(1, 1, dtype=torch.float64, device=pos.device)
        ),
        -1,
    )
    p = p.expand(batch, height, width, 3)
    e = torch.stack(
        [
            (torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 2, :], xyw[..., 0, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 0, :], xyw[..., 1, :]) * p).sum(-1),
        ],
        -1,
    )
    det = (xyw[..., 0, :] * torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :])).sum(-1)
    s = e.sum(-1)
    s = torch.where(covered, s, torch.ones_like(s))
    det = torch.where(covered, det, torch.ones_like(det))
    zw = (e * v[..., 2]).sum(-1) / det
    out = torch.stack([e[..., 0] / s, e[..., 1] / s, zw, (t + 1).double()], -1)
    return torch.where(covered[..., None], out, torch.zeros_like(out))


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cross(a, b, dim=-1)


def barycentric_backward(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, grad: torch.Tensor):
    """d loss / d pos_clip from d loss / d rast (channels u, v, z/w), computed analytically.

    With ``V_i = (x_i, y_i, w_i)``, pixel ``p = (ndc_x, ndc_y, 1)`` and ``e_0 = V_1 . (V_2 x p)`` (cyclic),
    ``b_i = e_i / sum(e)`` and ``z/w = sum(e_i z_i) / det`` where ``det = V_0 . (V_1 x V_2)``.
    """
    batch, n_vert, _ = pos.shape
    height, width = rast.shape[1:3]
    tid = rast[..., 3].long() - 1
    sel = (tid >= 0).nonzero(as_tuple=True)
    if sel[0].numel() == 0:
        return torch.zeros_like(pos)
    b, r, c = sel
    t = tid[sel]
    idx = tri.long()[t]  # [P,3]
    v = pos.double()[b[:, None], idx]  # [P,3,4]
    va, vb, vc = (v[:, i][:, [0, 1, 3]] for i in range(3))
    z = v[..., 2]
    p = torch.stack(
        [
            (2 * c + 1).double() / width - 1.0,
            1.0 - (2 * r + 1).double() / height,
            torch.ones_like(c, dtype=torch.float64),
        ],
        -1,
    )
    n0, n1, n2 = _cross(vb, vc), _cross(vc, va), _cross(va, vb)
    e = torch.stack([(n0 * p).sum(-1), (n1 * p).sum(-1), (n2 * p).sum(-1)], -1)
    s = e.sum(-1, keepdim=True)
    det = (va * n0).sum(-1, keepdim=True)
    bary = e / s
    zw = (e * z).sum(-1, keepdim=True) / det
    g = grad[sel].double()
    gb = torch.stack([g[:, 0], g[:, 1], torch.zeros_like(g[:, 0])], -1)
    gz = g[:, 2:3]
    ge = (gb - (gb * bary).sum(-1, keepdim=True)) / s + gz * z / det  # dL/de_i
    gdet = -gz * zw / det
    ga = ge[:, 1:2] * _cross(p, vc) + ge[:, 2:3] * _cross(vb, p) + gdet * n0
    gbv = ge[:, 0:1] * _cross(vc, p) + ge[:, 2:3] * _cross(p, va) + gdet * n1
    gc = ge[:, 0:1] * _cross(p, vb) + ge[:, 1:2] * _cross(va, p) + gdet * n2
    gxyw = torch.stack([ga, gbv, gc], 1)  # [P,3,3]
    gpos = torch.zeros(batch * n_vert, 4, dtype=torch.float64, device=pos.device)
    gv = torch.stack([gxyw[..., 0], gxyw[..., 1], gz * e / det, gxyw[..., 2]], -1)  # [P,3,4]
    gpos.index_add_(0, (b[:, None] * n_vert + idx).reshape(-1), gv.reshape(-1, 4))
    return gpos.view(batch, n_vert, 4).to(pos.dtype)


def barycentric_grad_warp(
    pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Warp implementation of the rast -> pos_clip backward (:func:`barycentric_backward`'s maths): a thread
    per run of pixels, adding into ``[B,V,4]`` float64 (CPU threads own whole items: the adds never race)."""
    k = loaded_kernels()
    wp = k.wp
    batch, height, width = rast.shape[:3]
    dtype = pos.dtype
    gpos = torch.zeros(pos.shape, dtype=torch.float64, device=pos.device)
    span, n_span = pixel_spans(pos.device, height, width)
    vec4 = wp.vec4d if dtype == torch.float64 else wp.vec4f
    args = dict(
        pos4=wp.from_torch(pos.detach().contiguous(), dtype=vec4),
        tri=wp.from_torch(tri_int32(tri), dtype=wp.vec3i),
        rast=wp.from_torch(rast.detach().to(dtype).contiguous()),
        grad=wp.from_torch(grad.to(dtype).contiguous()),
        height=height,
        width=width,
        span=span,
        b=BATCH,
        gpos4=wp.from_torch(gpos, dtype=wp.vec4d),
    )
    launch_items([(k.raster.bary_grad_kernel, n_span, args)], batch, batch * height * width, pos.device)
    return gpos


def barycentric_grad_packed(
    pos: torch.Tensor, tri32: torch.Tensor, rast: torch.Tensor, pix: torch.Tensor, bounds: torch.Tensor, grad
) -> torch.Tensor:
    """d loss / d pos_clip ``[B,V,4]`` (pos's dtype) from ``grad [P,2]`` = d loss / d (u, v) at the covered
    pixels ``pix`` (``bounds [B+1]``: where each batch item starts, plus P) of ``rast [B,H,W,4]``."""
    k = warp_kernels()
    if k is None or pos.dtype not in (torch.float32, torch.float64):
        full = rast.new_zeros(rast.shape).reshape(-1, 4)
        full[pix, :2] = grad.to(rast.dtype)
        return barycentric_backward(pos.detach(), tri32, rast.detach(), full.view(rast.shape))
    wp = k.wp
    batch, height, width = rast.shape[:3]
    dtype = pos.dtype
    gpos = torch.zeros(pos.shape, dtype=torch.float64, device=pos.device)
    vec4 = wp.vec4d if dtype == torch.float64 else wp.vec4f
    common = dict(
        pos4=wp.from_torch(pos.detach().contiguous(), dtype=vec4),
        tri=wp.from_torch(tri32, dtype=wp.vec3i),
        rast=wp.from_torch(rast.detach().to(dtype).reshape(-1, 4).contiguous()),
        height=height,
        width=width,
        gpos4=wp.from_torch(gpos, dtype=wp.vec4d),
    )
    grad = grad.to(dtype).contiguous()
    starts = bounds.tolist()
    wdev, _ = warp_device(pos.device)

    def run(items: tuple[int, int]) -> None:
        for b in range(*items):
            p0, p1 = starts[b], starts[b + 1]
            if p1 > p0:
                pixels = dict(pix=wp.from_torch(pix[p0:p1]), grad=wp.from_torch(grad[p0:p1]))
                launch(k.raster.bary_grad_packed_kernel, p1 - p0, wdev, **common, **pixels, b=b)

    dispatch(run, item_chunks(batch, pos.device), pix.shape[0], pos.device)
    return gpos.to(dtype)


def _remember(rast: torch.Tensor, pos: torch.Tensor, tri32: torch.Tensor, aux: RasterAux | None) -> None:
    """Keep ``aux`` for :func:`recall_aux` while ``rast`` lives (see :mod:`facezoo.render._cache`)."""
    if aux is not None:
        remember(rast, "raster_aux", aux, pos, tri32)


def recall_aux(rast: torch.Tensor, pos: torch.Tensor, tri32: torch.Tensor) -> RasterAux | None:
    """The :class:`RasterAux` that :func:`rasterize_builtin` computed for ``rast`` when ``rast``, ``pos`` and
    ``tri32`` are the very tensors it saw, unmodified (same storage, shape, strides, dtype, version); else
    None. This is how the public :func:`~facezoo.render.antialias` after the public
    :func:`~facezoo.render.rasterize` saves two passes; :class:`~facezoo.render.MeshRenderer` passes the aux
    explicitly (:func:`rasterize_with_aux`)."""
    return recall(rast, "raster_aux", pos, tri32)


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, height, width, cull):
        tri32 = tri_int32(tri)
        source = pos.detach().contiguous()
        rast, aux = _forward(source, tri32, height, width, cull)
        _remember(rast, source, tri32, aux)
        ctx.save_for_backward(pos, tri32, rast)
        ctx.warp = warp_kernels() is not None
        return rast

    @staticmethod
    def backward(ctx, grad):
        pos, tri, rast = ctx.saved_tensors
        gpos = None
        if ctx.needs_input_grad[0]:
            if ctx.warp:
                gpos = barycentric_grad_warp(pos, tri, rast, grad).to(pos.dtype)
            else:
                gpos = barycentric_backward(pos, tri, rast, grad)
        return gpos, None, None, None, None


def _forward(pos: torch.Tensor, tri32: torch.Tensor, height: int, width: int, cull: bool):
    """(rast in pos's dtype, RasterAux or None); the arithmetic is float64 in both implementations."""
    if warp_kernels() is not None:
        return rasterize_warp(pos, tri32, height, width, cull)
    return rasterize_torch(pos.to(torch.float64), tri32, height, width, cull).to(pos.dtype), None


def rasterize_builtin(
    pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], cull_backface: bool
) -> torch.Tensor:
    """Builtin rasterization with gradients to ``pos_clip`` through (u, v, z/w)."""
    return _Rasterize.apply(pos_clip, tri, resolution[0], resolution[1], bool(cull_backface))


def rasterize_with_aux(
    pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], cull_backface: bool
) -> tuple[torch.Tensor, RasterAux | None]:
    """Builtin rasterization without a graph, and the :class:`RasterAux` of the same positions (None with the
    PyTorch kernels) for :func:`facezoo.render.antialias.antialias_pairs`."""
    with torch.no_grad():
        return _forward(pos_clip.detach().contiguous(), tri_int32(tri), *resolution, bool(cull_backface))


BACKEND = Backend(name="builtin", available=lambda device: True, rasterize=rasterize_builtin)

"""``antialias``: nvdiffrast-style analytic antialiasing, the source of silhouette gradients.

For every horizontally or vertically adjacent pixel pair whose triangle ids differ, the nearer surface's
triangle T (the covered pixel's, or the lower z/w) is taken as the occluder. Walking from the occluder's pixel
centre P to the other centre Q, the segment leaves T through one of T's edges at ``P + t (Q - P)``. If that
edge is a silhouette edge (a mesh boundary, or its neighbour across the edge faces the other way in the
image), the pixel on the wrong side of the midpoint is blended: for ``t > 1/2`` Q takes ``(t - 1/2)`` of P's
colour, for ``t < 1/2`` P takes ``(1/2 - t)`` of Q's colour. ``t`` depends on the edge's projected vertices,
so the blend carries gradients to ``pos_clip``; it is continuous as the edge sweeps across a pixel centre.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from facezoo.render._cache import cached, tri_int32
from facezoo.render._checks import check_rast, check_rast_ids, check_tensor, check_tri, describe
from facezoo.render._runtime import BATCH, launch_items, loaded_kernels, pixel_spans, use_warp
from facezoo.render.backends.builtin import RasterAux, recall_aux


def edge_neighbours(tri: torch.Tensor) -> torch.Tensor:
    """``[T,3]`` long: the triangle across edge k = (tri[:,k], tri[:,k+1 mod 3]), or -1 on a boundary.
    Cached per triangle tensor (see ``facezoo.render._cache``). Non-manifold edges pair arbitrarily."""
    return cached(tri, "edge_neighbours", _edge_neighbours)


def _edge_neighbours(tri: torch.Tensor) -> torch.Tensor:
    t = tri.long()
    n_tri = t.shape[0]
    a = t
    b = t.roll(-1, dims=1)
    lo, hi = torch.minimum(a, b).reshape(-1), torch.maximum(a, b).reshape(-1)
    code = lo * (int(t.max()) + 1 if t.numel() else 1) + hi
    order = torch.argsort(code)
    sc = code[order]
    same = sc[1:] == sc[:-1]
    adj = torch.full((n_tri * 3,), -1, dtype=torch.long, device=tri.device)
    i0, i1 = order[:-1][same], order[1:][same]
    adj[i0] = i1 // 3
    adj[i1] = i0 // 3
    return adj.view(n_tri, 3)


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _screen(pos: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[...,4]`` clip -> ``[...,2]`` pixel coordinates (x right, y down; centres at +0.5)."""
    w = pos[..., 3]
    safe_w = torch.where(w > 0, w, torch.ones_like(w))
    return torch.stack(
        ((pos[..., 0] / safe_w + 1) * (width * 0.5), (1 - pos[..., 1] / safe_w) * (height * 0.5)), -1
    )


def _centres(pix: torch.Tensor, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
    rc = pix % (height * width)
    return torch.stack(((rc % width).to(dtype) + 0.5, (rc // width).to(dtype) + 0.5), -1)


def _pairs_torch(rast: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor):
    """Silhouette pairs in PyTorch: ``(b, p_pix, q_pix, t_occ, k)`` long ``[L]`` each (P: the occluder's
    flat pixel index into ``[B*H*W]``, Q: the other one, k: the edge of t_occ walked through)."""
    batch, height, width = rast.shape[:3]
    adj = edge_neighbours(tri)
    tri = tri.long()
    scr = _screen(pos_clip.detach(), height, width)
    tv = scr[:, tri]  # [B,T,3,2]
    area = _cross2(tv[:, :, 1] - tv[:, :, 0], tv[:, :, 2] - tv[:, :, 0])
    front = (pos_clip.detach()[..., 3][:, tri] > 0).all(-1)  # [B,T] all vertices in front of the eye
    tid = rast[..., 3].detach().long() - 1
    zw = rast[..., 2].detach()
    out = []
    for dr, dc in ((0, 1), (1, 0)):
        ia = tid[:, : height - dr, : width - dc]
        ib = tid[:, dr:, dc:]
        za = zw[:, : height - dr, : width - dc]
        zb = zw[:, dr:, dc:]
        a_occ = (ia >= 0) & ((ib < 0) | (za < zb))
        b, r, c = (ia != ib).nonzero(as_tuple=True)
        a_first = a_occ[b, r, c]
        pa = (b * height + r) * width + c
        pb = (b * height + r + dr) * width + c + dc
        p_pix = torch.where(a_first, pa, pb)
        q_pix = torch.where(a_first, pb, pa)
        t_occ = torch.where(a_first, ia[b, r, c], ib[b, r, c])
        keep = (t_occ >= 0) & front[b, t_occ.clamp(min=0)]
        b, p_pix, q_pix, t_occ = b[keep], p_pix[keep], q_pix[keep], t_occ[keep]
        verts = tv[b, t_occ]  # [L,3,2]
        sign = torch.sign(area[b, t_occ])[:, None]
        e0, e1 = verts, verts.roll(-1, dims=1)
        f_p = sign * _cross2(e1 - e0, _centres(p_pix, height, width, scr.dtype)[:, None] - e0)
        f_q = sign * _cross2(e1 - e0, _centres(q_pix, height, width, scr.dtype)[:, None] - e0)
        cand = (f_q < 0) & (f_p >= 0)
        t_edge = torch.where(cand, f_p / torch.where(cand, f_p - f_q, torch.ones_like(f_p)), 2.0)
        t_min, k = t_edge.min(-1)
        # silhouette: a boundary edge, or the neighbour across it faces the other way (or is clipped)
        nb = adj[t_occ, k]
        nbc = nb.clamp(min=0)
        ok = (t_min <= 1.0) & ((nb < 0) | ~front[b, nbc] | (torch.sign(area[b, nbc]) != sign[:, 0]))
        out.append((b[ok], p_pix[ok], q_pix[ok], t_occ[ok], k[ok]))
    return tuple(torch.cat(x) for x in zip(*out))


def _codes_warp(pos: torch.Tensor, tri32: torch.Tensor, rast: torch.Tensor, aux: RasterAux | None):
    """``[B,H,W,2]`` int8 silhouette pair codes (see ``kernels.silhouette.silhouette_kernel``): the vertices'
    projection and the triangles' orientations come from ``aux`` (the rasterizer's, of the same positions)
    or from two more passes."""
    k = loaded_kernels()
    wp = k.wp
    batch, height, width = rast.shape[:3]
    n_vert, n_tri = pos.shape[1], tri32.shape[0]
    dev = pos.device
    adj = cached(tri32, "edge_neighbours_int32", lambda t: edge_neighbours(t).to(torch.int32).contiguous())
    code = torch.empty((batch, height, width, 2), dtype=torch.int8, device=dev)
    flag = torch.empty((batch, n_tri), dtype=torch.int8, device=dev)
    if aux is None:
        scr = torch.empty((batch, n_vert, 4), dtype=torch.float64, device=dev)
        orient = torch.empty((batch, n_tri), dtype=torch.int8, device=dev)
    else:
        scr, orient = aux
    wscr, wori = wp.from_torch(scr, dtype=wp.vec4d), wp.from_torch(orient)
    wtri, wadj = wp.from_torch(tri32, dtype=wp.vec3i), wp.from_torch(adj, dtype=wp.vec3i)
    span, n_span = pixel_spans(dev, height, width)
    launches = []
    if aux is None:
        wpos = wp.from_torch(pos.detach().contiguous())
        launches += [
            (k.raster.project_kernel, n_vert, dict(pos=wpos, height=height, width=width, b=BATCH, scr=wscr)),
            (k.silhouette.tri_orientation_kernel, n_tri, dict(scr=wscr, tri=wtri, b=BATCH, orient=wori)),
        ]
    wflag = wp.from_torch(flag)
    launches += [
        (k.silhouette.silhouette_flag_kernel, n_tri, dict(adj=wadj, orient=wori, b=BATCH, flag=wflag)),
        (
            k.silhouette.silhouette_kernel,
            n_span,
            dict(
                scr=wscr,
                tri=wtri,
                adj=wadj,
                orient=wori,
                flag=wflag,
                rast=wp.from_torch(rast.detach().to(pos.dtype).contiguous()),
                height=height,
                width=width,
                span=span,
                b=BATCH,
                code=wp.from_torch(code),
            ),
        ),
    ]
    launch_items(launches, batch, batch * height * width, dev)
    return code


def _pairs_warp(rast: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor, aux: RasterAux | None = None):
    """The same pairs as :func:`_pairs_torch` from a Warp kernel (one code per pixel and direction)."""
    batch, height, width = rast.shape[:3]
    code = _codes_warp(pos_clip, tri_int32(tri), rast, aux).view(-1)
    e = code.nonzero()[:, 0]
    val = code[e].long() - 1
    a_first, k = val >= 3, val % 3
    pa = e // 2
    pb = pa + torch.where(e % 2 == 0, 1, width)
    p_pix = torch.where(a_first, pa, pb)
    q_pix = torch.where(a_first, pb, pa)
    t_occ = rast[..., 3].detach().reshape(-1)[p_pix].long() - 1
    return p_pix // (height * width), p_pix, q_pix, t_occ, k


def antialias(
    color: torch.Tensor, rast: torch.Tensor, pos_clip: torch.Tensor, tri: torch.Tensor
) -> torch.Tensor:
    """Antialias silhouette edges of a rendered image (see the module docstring for the rule).

    Args:
        color: ``[B,H,W,C]`` image (e.g. from :func:`interpolate`), top-row-first.
        rast: ``[B,H,W,4]`` from :func:`rasterize` with the same ``pos_clip`` and ``tri``.
        pos_clip: ``[B,V,4]`` clip-space positions (gradients flow to them through the blend weights).
        tri: ``[T,3]`` int32/int64.

    Returns:
        ``[B,H,W,C]`` antialiased image, differentiable w.r.t. ``color`` and ``pos_clip``. The silhouette
        pairs are found without gradients (a Warp kernel, or PyTorch without Warp); only the blend of
        those few pixels is recorded by autograd.

    Example:
        >>> pos = torch.tensor([[[-0.9, -0.9, 0.0, 1.0], [0.8, -0.9, 0.0, 1.0], [-0.9, 0.7, 0.0, 1.0]]])
        >>> tri = torch.tensor([[0, 1, 2]], dtype=torch.int32)
        >>> from facezoo.render import rasterize
        >>> rast = rasterize(pos, tri, (16, 16))
        >>> out = antialias((rast[..., 3:] > 0).float(), rast, pos, tri)
        >>> bool(((out > 0) & (out < 1)).any())  # soft silhouette pixels
        True
    """
    rast = check_rast(rast)
    color = check_tensor("color", color, ndim=4, device=rast.device, want="[B,H,W,C]")
    pos_clip = check_tensor("pos_clip", pos_clip, ndim=3, last=4, device=rast.device, want="[B,V,4]")
    if not pos_clip.is_floating_point():
        raise TypeError(f"pos_clip must be a float tensor, got {describe(pos_clip)}")
    tri = check_tri(tri, pos_clip.shape[1], rast.device)
    if rast.shape[:3] != color.shape[:3] or pos_clip.shape[0] != rast.shape[0]:
        raise ValueError(
            f"color ({describe(color)}), rast ({describe(rast)}) and pos_clip ({describe(pos_clip)}) disagree"
        )
    check_rast_ids(rast, tri.shape[0])
    return antialias_unchecked(color, rast, pos_clip, tri, recall_aux(rast, pos_clip, tri_int32(tri)))


def antialias_unchecked(
    color: torch.Tensor,
    rast: torch.Tensor,
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    aux: RasterAux | None = None,
) -> torch.Tensor:
    """:func:`antialias` without the input checks, for a rast made here from ``pos_clip`` and ``tri``;
    ``aux``: the builtin rasterizer's by-products for the same positions (saves two passes)."""
    batch, height, width, n_ch = color.shape
    pairs = _pairs_warp(rast, pos_clip, tri, aux) if use_warp(pos_clip) else _pairs_torch(rast, pos_clip, tri)
    b, p_pix, q_pix, t_occ, k = pairs
    if b.numel() == 0:
        return color
    # the blend weight t (where P -> Q leaves the occluder through edge k) is differentiable in pos_clip
    vidx = tri.long()[t_occ]  # [L,3]
    verts = _screen(pos_clip[b[:, None], vidx], height, width)  # [L,3,2]
    sign = torch.sign(_cross2(verts[:, 1] - verts[:, 0], verts[:, 2] - verts[:, 0])).detach()
    e0 = verts.gather(1, k[:, None, None].expand(-1, 1, 2))[:, 0]
    e1 = verts.gather(1, ((k + 1) % 3)[:, None, None].expand(-1, 1, 2))[:, 0]
    f_p = sign * _cross2(e1 - e0, _centres(p_pix, height, width, verts.dtype) - e0)
    f_q = sign * _cross2(e1 - e0, _centres(q_pix, height, width, verts.dtype) - e0)
    t = f_p / (f_p - f_q)
    out = _Blend.apply(color.reshape(-1, n_ch), t, p_pix, q_pix)
    return out.view(batch, height, width, n_ch)


class _Blend(torch.autograd.Function):
    """``(color [M,C], t [L], p_pix [L], q_pix [L]) -> [M,C]``: for t > 1/2 Q gets (t - 1/2) of P's
    colour, for t < 1/2 P gets (1/2 - t) of Q's colour; i.e. ``dst += w (color[src] - color[dst])`` with
    ``w = |t - 1/2|``. The analytic backward touches the image once (autograd through the gathers would
    build and add two full-image zero tensors)."""

    @staticmethod
    def forward(ctx, color, t, p_pix, q_pix):
        beyond = t.detach() > 0.5
        src = torch.where(beyond, p_pix, q_pix)
        dst = torch.where(beyond, q_pix, p_pix)
        weight = (t.detach() - 0.5).abs().to(color.dtype)[:, None]
        diff = color[src] - color[dst]
        out = color.index_add(0, dst, weight * diff)
        ctx.save_for_backward(beyond, src, dst, weight, diff)
        ctx.t_dtype = t.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        beyond, src, dst, weight, diff = ctx.saved_tensors
        g_dst = grad[dst]
        g_color = None
        if ctx.needs_input_grad[0]:
            g_color = grad.clone()
            g_color.index_add_(0, src, weight * g_dst)
            g_color.index_add_(0, dst, -weight * g_dst)
        g_t = None
        if ctx.needs_input_grad[1]:
            g_w = (g_dst * diff).sum(-1)
            g_t = torch.where(beyond, g_w, -g_w).to(ctx.t_dtype)
        return g_color, g_t, None, None

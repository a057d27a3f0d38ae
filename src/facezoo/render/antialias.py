"""``antialias``: nvdiffrast-style analytic antialiasing, the source of silhouette gradients.

For every horizontally or vertically adjacent pixel pair whose triangle ids differ, the nearer surface's
triangle T (the covered pixel's, or the lower z/w) is taken as the occluder. Walking from the occluder's pixel
centre P to the other centre Q, the segment leaves T through one of T's edges at ``P + t (Q - P)``. If that
edge is a silhouette edge (a mesh boundary, or its neighbour across the edge faces the other way in the
image),
the pixel on the wrong side of the midpoint is blended: for ``t > 1/2`` Q takes ``(t - 1/2)`` of P's
colour, for
``t < 1/2`` P takes ``(1/2 - t)`` of Q's colour. ``t`` depends on the edge's projected vertices, so the blend
carries gradients to ``pos_clip``; it is continuous as the edge sweeps across a pixel centre.
"""

from __future__ import annotations

import torch

from facezoo.render._checks import check_rast, check_tensor

_ADJ_CACHE: dict[tuple, torch.Tensor] = {}


def edge_neighbours(tri: torch.Tensor) -> torch.Tensor:
    """``[T,3]`` long: the triangle across edge k = (tri[:,k], tri[:,k+1 mod 3]), or -1 on a boundary.
    Cached per triangle tensor (data pointer, shape, version). Non-manifold edges pair arbitrarily."""
    key = (tri.data_ptr(), tuple(tri.shape), tri._version, tri.device)
    if key in _ADJ_CACHE:
        return _ADJ_CACHE[key]
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
    adj = adj.view(n_tri, 3)
    if len(_ADJ_CACHE) > 16:
        _ADJ_CACHE.clear()
    _ADJ_CACHE[key] = adj
    return adj


def _cross2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


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
        ``[B,H,W,C]`` antialiased image, differentiable w.r.t. ``color`` and ``pos_clip``.

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
    color = check_tensor("color", color, ndim=4, device=rast.device)
    pos_clip = check_tensor("pos_clip", pos_clip, ndim=3, last=4, device=rast.device)
    tri = check_tensor("tri", tri, ndim=2, last=3, dtypes=(torch.int32, torch.int64), device=rast.device)
    batch, height, width, n_ch = color.shape
    if rast.shape[:3] != color.shape[:3] or pos_clip.shape[0] != batch:
        raise ValueError(
            f"color {tuple(color.shape)}, rast {tuple(rast.shape)} and "
            f"pos_clip {tuple(pos_clip.shape)} disagree"
        )
    tri = tri.long()
    adj = edge_neighbours(tri)
    w = pos_clip[..., 3]
    safe_w = torch.where(w > 0, w, torch.ones_like(w))
    scr = torch.stack(
        ((pos_clip[..., 0] / safe_w + 1) * (width * 0.5), (1 - pos_clip[..., 1] / safe_w) * (height * 0.5)),
        -1,
    )
    tv = scr[:, tri]  # [B,T,3,2]
    area = _cross2(tv[:, :, 1] - tv[:, :, 0], tv[:, :, 2] - tv[:, :, 0]).detach()  # screen space (y down)
    front = (w[:, tri] > 0).all(-1)  # [B,T] all vertices in front of the eye
    tid = rast[..., 3].detach().long() - 1
    zw = rast[..., 2].detach()
    flat = color.reshape(-1, n_ch)
    deltas, targets = [], []
    for dr, dc in ((0, 1), (1, 0)):
        ia = tid[:, : height - dr, : width - dc]
        ib = tid[:, dr:, dc:]
        za = zw[:, : height - dr, : width - dc]
        zb = zw[:, dr:, dc:]
        diff = ia != ib
        a_occ = (ia >= 0) & ((ib < 0) | (za < zb))
        b, r, c = diff.nonzero(as_tuple=True)
        if b.numel() == 0:
            continue
        a_first = a_occ[b, r, c]
        pa = (b * height + r) * width + c
        pb = (b * height + r + dr) * width + c + dc
        p_pix = torch.where(a_first, pa, pb)  # occluder's pixel
        q_pix = torch.where(a_first, pb, pa)
        t_occ = torch.where(a_first, ia[b, r, c], ib[b, r, c])
        keep = (t_occ >= 0) & front[b, t_occ.clamp(min=0)]
        b, p_pix, q_pix, t_occ = b[keep], p_pix[keep], q_pix[keep], t_occ[keep]
        if b.numel() == 0:
            continue
        rc_p = p_pix % (height * width)
        rc_q = q_pix % (height * width)
        cen_p = torch.stack(((rc_p % width).to(scr.dtype) + 0.5, (rc_p // width).to(scr.dtype) + 0.5), -1)
        cen_q = torch.stack(((rc_q % width).to(scr.dtype) + 0.5, (rc_q // width).to(scr.dtype) + 0.5), -1)
        verts = tv[b, t_occ]  # [P,3,2]
        sign = torch.sign(area[b, t_occ])[:, None]
        e0 = verts
        e1 = verts.roll(-1, dims=1)
        f_p = sign * _cross2(e1 - e0, cen_p[:, None] - e0)  # [P,3] inside >= 0
        f_q = sign * _cross2(e1 - e0, cen_q[:, None] - e0)
        cand = (f_q < 0) & (f_p >= 0)
        t_edge = f_p / torch.where(cand, f_p - f_q, torch.ones_like(f_p))
        t_edge = torch.where(cand, t_edge, torch.full_like(t_edge, 2.0))
        t_min, k = t_edge.detach().min(-1)
        ok = t_min <= 1.0
        # silhouette: a boundary edge, or the neighbour across it faces the other way
        nb = adj[t_occ, k]
        nb_front = front[b, nb.clamp(min=0)]
        flips = torch.sign(area[b, nb.clamp(min=0)]) != sign[:, 0]
        ok &= (nb < 0) | flips | ~nb_front
        if not bool(ok.any()):
            continue
        t = t_edge.gather(1, k[:, None])[:, 0][ok]
        p_pix, q_pix = p_pix[ok], q_pix[ok]
        col_p, col_q = flat[p_pix], flat[q_pix]
        beyond = (t > 0.5)[:, None]
        # t > 1/2: Q gets (t - 1/2) of P's colour; t < 1/2: P gets (1/2 - t) of Q's colour
        deltas.append(
            torch.where(beyond, (t - 0.5)[:, None] * (col_p - col_q), (0.5 - t)[:, None] * (col_q - col_p))
        )
        targets.append(torch.where(beyond[:, 0], q_pix, p_pix))
    if not deltas:
        return color
    out = flat.index_add(0, torch.cat(targets), torch.cat(deltas).to(color.dtype))
    return out.view(batch, height, width, n_ch)

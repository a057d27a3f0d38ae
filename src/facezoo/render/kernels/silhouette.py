"""Warp kernels of ``facezoo.render.antialias``: the silhouette pixel pairs (the blend itself is
differentiable PyTorch on that short list; launched by :mod:`facezoo.render.antialias`)."""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import FLOATS, area_sign, pixel_run, screen_area, screen_triangle

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


@wp.func
def _cross2(a: wp.vec2d, b: wp.vec2d) -> wp.float64:
    return a[0] * b[1] - a[1] * b[0]


@wp.kernel
def tri_orientation_kernel(
    scr: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    b: int,
    orient: wp.array2d(dtype=wp.int8),
):
    """``orient[b, t]``: the sign (-1, 0, 1) of triangle t's signed area in pixel coordinates (y down), or
    2 when a vertex is not in front of the eye (w <= 0). ``scr`` is ``project_kernel``'s output."""
    t = wp.tid()
    sa, sb, sc, front = screen_triangle(scr, tri, b, t)
    res = wp.int8(2)
    if front:
        res = area_sign(screen_area(sa, sb, sc))
    orient[b, t] = res


@wp.func
def _is_silhouette(adj: wp.array(dtype=wp.vec3i), orient: wp.array2d(dtype=wp.int8), b: int, t: int, k: int):
    """Edge k of front triangle t is a silhouette: a mesh boundary, or the neighbour across it is not in
    front of the eye or faces the other way."""
    nb = adj[t][k]
    if nb < 0:
        return True
    o = orient[b, nb]
    return o == wp.int8(2) or o != orient[b, t]


@wp.kernel
def silhouette_flag_kernel(
    adj: wp.array(dtype=wp.vec3i),
    orient: wp.array2d(dtype=wp.int8),
    b: int,
    flag: wp.array2d(dtype=wp.int8),
):
    """``flag[b, t] = 1`` when t is in front of the eye and has a silhouette edge (most triangles have
    none, and the pixel kernel skips them without walking)."""
    t = wp.tid()
    res = wp.int8(0)
    if orient[b, t] != wp.int8(2):
        for k in range(3):
            if _is_silhouette(adj, orient, b, t, k):
                res = wp.int8(1)
    flag[b, t] = res


@wp.kernel
def silhouette_kernel(
    scr: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    adj: wp.array(dtype=wp.vec3i),
    orient: wp.array2d(dtype=wp.int8),
    flag: wp.array2d(dtype=wp.int8),
    rast: wp.array4d(dtype=Any),
    height: int,
    width: int,
    span: int,
    b: int,
    code: wp.array4d(dtype=wp.int8),
):
    """For pixel P and its right (d = 0) / lower (d = 1) neighbour Q: ``code[b, r, c, d] = 1 + k + 3 a``
    when the pair straddles a silhouette edge k of the occluding triangle (a = 1: P's triangle occludes),
    else 0. The occluder, the edge walked through and the silhouette test are ``antialias``'s rule; the
    geometry is in pixel-index coordinates (``scr``: centre of column c at x = c)."""
    i = wp.tid()
    r, c0, c1 = pixel_run(i, span, width)
    for c in range(c0, c1):
        ia = int(rast[b, r, c, 3]) - 1
        for d in range(2):
            rq = r + d
            cq = c + 1 - d
            res = wp.int8(0)
            if rq < height and cq < width:
                ib = int(rast[b, rq, cq, 3]) - 1
                if ia != ib:
                    a_first = ia >= 0 and (ib < 0 or rast[b, r, c, 2] < rast[b, rq, cq, 2])
                    t = ib
                    pp = wp.vec2d(wp.float64(cq), wp.float64(rq))  # the occluder's pixel centre
                    qq = wp.vec2d(wp.float64(c), wp.float64(r))
                    if a_first:
                        t = ia
                        tmp = pp
                        pp = qq
                        qq = tmp
                    if t >= 0:
                        if flag[b, t] != wp.int8(0):
                            res = _walk(scr, tri, adj, orient, b, t, pp, qq, a_first)
            code[b, r, c, d] = res


@wp.func
def _walk(
    scr: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    adj: wp.array(dtype=wp.vec3i),
    orient: wp.array2d(dtype=wp.int8),
    b: int,
    t: int,
    pp: wp.vec2d,
    qq: wp.vec2d,
    a_first: bool,
) -> wp.int8:
    """The first edge k of t crossed walking from pp to qq (at t <= 1), coded as in ``silhouette_kernel``
    when it is a silhouette edge; else 0."""
    idx = tri[t]
    s0 = wp.vec2d(scr[b, idx[0]][0], scr[b, idx[0]][1])
    s1 = wp.vec2d(scr[b, idx[1]][0], scr[b, idx[1]][1])
    s2 = wp.vec2d(scr[b, idx[2]][0], scr[b, idx[2]][1])
    sign = wp.float64(orient[b, t])
    best = wp.float64(2.0)
    k = 0
    for e in range(3):
        e0 = s0
        e1 = s1
        if e == 1:
            e0 = s1
            e1 = s2
        elif e == 2:
            e0 = s2
            e1 = s0
        fp = sign * _cross2(e1 - e0, pp - e0)
        fq = sign * _cross2(e1 - e0, qq - e0)
        if fq < wp.float64(0.0) and fp >= wp.float64(0.0):
            te = fp / (fp - fq)
            if te < best:
                best = te
                k = e
    if best > wp.float64(1.0) or not _is_silhouette(adj, orient, b, t, k):
        return wp.int8(0)
    res = 1 + k
    if a_first:
        res += 3
    return wp.int8(res)


for _s in FLOATS:
    wp.overload(silhouette_kernel, {"rast": wp.array4d(dtype=_s)})

"""Warp kernels of the builtin rasterizer and its backward (launched by ``facezoo.render.backends.builtin``).

Rasterization, three passes, all arithmetic in float64 whatever the input dtype:

0. ``project``: one thread per vertex: pixel-index coordinates ``(sx, sy)`` (column c's centre is sx = c),
   ``z/w`` and ``w``. Shared by the ~6 triangles of a vertex, so the divides are done once.
1. ``zbuffer``: one thread per triangle of one batch item. Where all three ``w > 0`` (the common case) a
   screen-space bounding box rejects the many triangles that contain no pixel centre, then 2D edge
   functions (stepped incrementally) test the centres and ``z/w`` (affine in screen space) is interpolated.
   A triangle with a vertex at ``w <= 0`` (crossing the near plane) uses Olano-Greer homogeneous edge
   functions ``e_i = (V_j x V_k) . p`` with ``V = (x, y, w)``, ``p = (ndc_x, ndc_y, 1)`` over the whole
   screen: no clipping needed. Both tests are the same predicate (``lambda_i >= 0`` and ``w > 0`` at the
   pixel). The nearest ``z/w`` wins through an int64 atomic-min on a packed ``(quantised depth << 32) |
   triangle`` key (ties go to the lower triangle index). It also records each triangle's screen orientation
   (antialias reuses it).
2. ``resolve``: a thread per run of ``span`` pixels recomputes the winner's perspective-correct barycentrics
   (homogeneous form) and writes rast in the output dtype.

On CPU Warp runs a launch on one thread and its atomics are plain read-modify-writes: the host code gives
every CPU thread a disjoint batch range, so nothing races.
"""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import (
    DEPTH_SCALE,
    EMPTY_KEY,
    FLOATS,
    TRI_SHIFT,
    area_sign,
    bary_grad_pixel,
    overload,
    pixel_ndc,
    pixel_run,
    screen_area,
    screen_triangle,
    vert_xyw,
)

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


@wp.func
def _key(zw: wp.float64, t: int) -> wp.int64:
    q = wp.int64((zw * wp.float64(0.5) + wp.float64(0.5)) * wp.float64(DEPTH_SCALE))
    return q * wp.int64(TRI_SHIFT) + wp.int64(t)


@wp.kernel
def project_kernel(
    pos: wp.array3d(dtype=Any),
    height: int,
    width: int,
    b: int,
    scr: wp.array2d(dtype=wp.vec4d),
):
    i = wp.tid()
    w = wp.float64(pos[b, i, 3])
    if w <= wp.float64(0.0):
        scr[b, i] = wp.vec4d(0.0, 0.0, 0.0, w)
        return
    inv = wp.float64(1.0) / w
    half = wp.float64(0.5)
    sx = (wp.float64(pos[b, i, 0]) * inv + wp.float64(1.0)) * wp.float64(width) * half - half
    sy = (wp.float64(1.0) - wp.float64(pos[b, i, 1]) * inv) * wp.float64(height) * half - half
    scr[b, i] = wp.vec4d(sx, sy, wp.float64(pos[b, i, 2]) * inv, w)


@wp.kernel
def zbuffer_kernel(
    pos: wp.array3d(dtype=Any),
    scr: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    height: int,
    width: int,
    cull: int,
    b: int,
    zbuf: wp.array3d(dtype=wp.int64),
    orient: wp.array2d(dtype=wp.int8),
):
    t = wp.tid()
    idx = tri[t]
    sa, sb, sc, front = screen_triangle(scr, tri, b, t)
    zero = wp.float64(0.0)
    if front:
        # e_a(p) = (c - b) x (p - b), etc.; e_a + e_b + e_c = area (= (b - a) x (c - a)) everywhere
        area = screen_area(sa, sb, sc)
        orient[b, t] = area_sign(area)  # tri_orientation_kernel's value, for antialias (saves it a pass)
        # screen space: bounding box of pixel-index coordinates, then 2D edge functions
        # clamp in floating point first: far off-screen vertices would overflow int
        c0f = wp.max(zero, wp.ceil(wp.min(sa[0], wp.min(sb[0], sc[0]))))
        c1f = wp.min(wp.float64(width - 1), wp.floor(wp.max(sa[0], wp.max(sb[0], sc[0]))))
        if c1f < c0f:
            return
        r0f = wp.max(zero, wp.ceil(wp.min(sa[1], wp.min(sb[1], sc[1]))))
        r1f = wp.min(wp.float64(height - 1), wp.floor(wp.max(sa[1], wp.max(sb[1], sc[1]))))
        if r1f < r0f:
            return  # most small triangles end here: no pixel centre inside their bounding box
        c0 = int(c0f)
        c1 = int(c1f)
        r0 = int(r0f)
        r1 = int(r1f)
        if area == zero:
            return
        # pixel rows point down: counter-clockwise in NDC (front facing) is area < 0 here
        if cull != 0 and area > zero:
            return
        inv = wp.float64(1.0) / area
        # lambda_i(c, r) = lambda_i(0, 0) + c * dx_i + r * dy_i
        dxa = -(sc[1] - sb[1]) * inv
        dya = (sc[0] - sb[0]) * inv
        dxb = -(sa[1] - sc[1]) * inv
        dyb = (sa[0] - sc[0]) * inv
        dxc = -(sb[1] - sa[1]) * inv
        dyc = (sb[0] - sa[0]) * inv
        la0 = ((sc[0] - sb[0]) * (wp.float64(r0) - sb[1]) - (sc[1] - sb[1]) * (wp.float64(c0) - sb[0])) * inv
        lb0 = ((sa[0] - sc[0]) * (wp.float64(r0) - sc[1]) - (sa[1] - sc[1]) * (wp.float64(c0) - sc[0])) * inv
        lc0 = ((sb[0] - sa[0]) * (wp.float64(r0) - sa[1]) - (sb[1] - sa[1]) * (wp.float64(c0) - sa[0])) * inv
        for r in range(r0, r1 + 1):
            dr = wp.float64(r - r0)
            for c in range(c0, c1 + 1):
                dc = wp.float64(c - c0)
                la = la0 + dc * dxa + dr * dya
                lb = lb0 + dc * dxb + dr * dyb
                lc = lc0 + dc * dxc + dr * dyc
                if la >= zero and lb >= zero and lc >= zero:
                    zw = la * sa[2] + lb * sb[2] + lc * sc[2]
                    if zw >= wp.float64(-1.0) and zw <= wp.float64(1.0):
                        wp.atomic_min(zbuf, b, r, c, _key(zw, t))
        return
    orient[b, t] = wp.int8(2)
    if sa[3] <= zero and sb[3] <= zero and sc[3] <= zero:
        return
    # crossing the near plane: homogeneous edge functions over the whole screen
    va = wp.vec3d(wp.float64(pos[b, idx[0], 0]), wp.float64(pos[b, idx[0], 1]), wp.float64(pos[b, idx[0], 3]))
    vb = wp.vec3d(wp.float64(pos[b, idx[1], 0]), wp.float64(pos[b, idx[1], 1]), wp.float64(pos[b, idx[1], 3]))
    vc = wp.vec3d(wp.float64(pos[b, idx[2], 0]), wp.float64(pos[b, idx[2], 1]), wp.float64(pos[b, idx[2], 3]))
    za = wp.float64(pos[b, idx[0], 2])
    zb = wp.float64(pos[b, idx[1], 2])
    zc = wp.float64(pos[b, idx[2], 2])
    n0 = wp.cross(vb, vc)
    n1 = wp.cross(vc, va)
    n2 = wp.cross(va, vb)
    det = wp.dot(va, n0)
    if det == zero:
        return
    if cull != 0 and det < zero:
        return
    inv = wp.float64(1.0) / det  # scale the normals so that lambda_i = n_i . p directly
    n0 = n0 * inv
    n1 = n1 * inv
    n2 = n2 * inv
    hf = wp.float64(height)
    wf = wp.float64(width)
    for r in range(height):
        ny = wp.float64(1.0) - wp.float64(2 * r + 1) / hf
        for c in range(width):
            p = wp.vec3d(wp.float64(2 * c + 1) / wf - wp.float64(1.0), ny, wp.float64(1.0))
            l0 = wp.dot(n0, p)
            l1 = wp.dot(n1, p)
            l2 = wp.dot(n2, p)
            if l0 >= zero and l1 >= zero and l2 >= zero and l0 + l1 + l2 > zero:
                zw = l0 * za + l1 * zb + l2 * zc
                if zw >= wp.float64(-1.0) and zw <= wp.float64(1.0):
                    wp.atomic_min(zbuf, b, r, c, _key(zw, t))


overload(zbuffer_kernel, pos=(3, 0))
overload(project_kernel, pos=(3, 0))


@wp.kernel
def resolve_kernel(
    pos: wp.array3d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    zbuf: wp.array3d(dtype=wp.int64),
    height: int,
    width: int,
    span: int,
    b: int,
    out: wp.array4d(dtype=Any),
):
    """Thread i resolves pixels ``[i * span, (i + 1) * span)`` of batch item b (row-major)."""
    i = wp.tid()
    r, c0, c1 = pixel_run(i, span, width)
    for c in range(c0, c1):
        key = zbuf[b, r, c]
        if key == wp.int64(EMPTY_KEY):
            for k in range(4):
                out[b, r, c, k] = out.dtype(0.0)
        else:
            t = int(key - (key // wp.int64(TRI_SHIFT)) * wp.int64(TRI_SHIFT))
            idx = tri[t]
            va = vert_xyw(pos, b, idx[0])
            vb = vert_xyw(pos, b, idx[1])
            vc = vert_xyw(pos, b, idx[2])
            p = pixel_ndc(r, c, height, width)
            n0 = wp.cross(vb, vc)
            e0 = wp.dot(n0, p)
            e1 = wp.dot(wp.cross(vc, va), p)
            e2 = wp.dot(wp.cross(va, vb), p)
            s = e0 + e1 + e2
            det = wp.dot(va, n0)
            zw = (
                e0 * wp.float64(pos[b, idx[0], 2])
                + e1 * wp.float64(pos[b, idx[1], 2])
                + e2 * wp.float64(pos[b, idx[2], 2])
            ) / det
            out[b, r, c, 0] = out.dtype(e0 / s)
            out[b, r, c, 1] = out.dtype(e1 / s)
            out[b, r, c, 2] = out.dtype(zw)
            out[b, r, c, 3] = out.dtype(t + 1)


for _s in FLOATS:
    wp.overload(
        resolve_kernel,
        {"pos": wp.array3d(dtype=_s), "out": wp.array4d(dtype=_s)},
    )


@wp.kernel
def bary_grad_kernel(
    pos4: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array4d(dtype=Any),
    grad: wp.array4d(dtype=Any),
    height: int,
    width: int,
    span: int,
    b: int,
    gpos4: wp.array2d(dtype=wp.vec4d),
):
    """d loss / d pos from d loss / d (u, v, z/w) for thread i's pixels of batch item b (see ``pixel_run``);
    accumulates into float64 ``gpos4 [B,V]`` (vec4 rows)."""
    i = wp.tid()
    r, c0, c1 = pixel_run(i, span, width)
    for c in range(c0, c1):
        tf = rast[b, r, c, 3]
        if tf > rast.dtype(0.0):
            g0 = wp.float64(grad[b, r, c, 0])
            g1 = wp.float64(grad[b, r, c, 1])
            gz = wp.float64(grad[b, r, c, 2])
            bary_grad_pixel(pos4, tri, b, r, c, int(tf) - 1, g0, g1, gz, height, width, gpos4)


@wp.kernel
def bary_grad_packed_kernel(
    pos4: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array2d(dtype=Any),
    pix: wp.array(dtype=wp.int64),
    grad: wp.array2d(dtype=Any),
    height: int,
    width: int,
    b: int,
    gpos4: wp.array2d(dtype=wp.vec4d),
):
    """As ``bary_grad_kernel`` for the covered pixels ``pix`` (flat indices into ``rast [B*H*W,4]``, all
    of batch item b) given ``grad [P,2]`` = d loss / d (u, v)."""
    p = wp.tid()
    q = int(pix[p])
    rc = q - b * height * width
    r = rc // width
    c = rc - r * width
    g0 = wp.float64(grad[p, 0])
    g1 = wp.float64(grad[p, 1])
    bary_grad_pixel(pos4, tri, b, r, c, int(rast[q, 3]) - 1, g0, g1, wp.float64(0.0), height, width, gpos4)


overload(bary_grad_kernel, pos4=(2, 4), rast=(4, 0), grad=(4, 0))
overload(bary_grad_packed_kernel, pos4=(2, 4), rast=(2, 0), grad=(2, 0))

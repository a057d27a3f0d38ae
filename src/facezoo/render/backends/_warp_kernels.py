"""Warp kernels of the builtin renderer (one source for CPU and CUDA; float32 and float64 overloads).

Rasterization, three passes, all arithmetic in float64 whatever the input dtype:

0. ``project``: one thread per vertex: pixel-index coordinates ``(sx, sy)`` (column c's centre is sx = c),
   ``z/w`` and ``w``. Shared by the ~6 triangles of a vertex, so the divides are done once.
1. ``zbuffer``: one thread per triangle of one batch item. Where all three ``w > 0`` (the common case) a
   screen-space bounding box rejects the many triangles that contain no pixel centre, then 2D edge
   functions (stepped incrementally) test the centres and ``z/w`` (affine in screen space) is interpolated.
   A triangle with a vertex at ``w <= 0`` (crossing the near plane) uses Olano–Greer homogeneous edge
   functions ``e_i = (V_j x V_k) . p`` with ``V = (x, y, w)``, ``p = (ndc_x, ndc_y, 1)`` over the whole
   screen: no clipping needed. Both tests are the same predicate (``lambda_i >= 0`` and ``w > 0`` at the
   pixel). The nearest ``z/w`` wins through an int64 atomic-min on a packed ``(quantised depth << 32) |
   triangle`` key (ties go to the lower triangle index).
2. ``resolve``: a thread per run of ``span`` pixels recomputes the winner's perspective-correct barycentrics
   (homogeneous form) and writes rast in the output dtype.

On CPU Warp runs a launch on one thread and its atomics are plain read-modify-writes: the host code gives
every CPU thread a disjoint batch range (or pixel range and its own output buffer), so nothing races.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.config.quiet = True
if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting, no CPU-only CUDA warning
    wp.config.log_level = wp.LOG_ERROR
# every backward here is written by hand: no adjoint code (faster compiles; some local-matrix code has none)
wp.set_module_options({"enable_backward": False})

EMPTY_KEY = 9223372036854775807  # int64 max: no triangle
DEPTH_SCALE = 2147483648.0  # 2^31 depth levels over z/w in [-1, 1]
TRI_SHIFT = 4294967296  # 2^32

_F = (wp.float32, wp.float64)


def _overload(kernel, **arrays) -> None:
    """Declare the float32 and float64 overloads of a generic kernel: ``arrays`` maps each ``Any`` argument
    to ``(ndim, vector length or 0)``; all of them take the same scalar type."""
    for scalar in _F:
        types = {}
        for name, (ndim, vec) in arrays.items():
            dtype = wp.types.vector(vec, scalar) if vec else scalar
            types[name] = wp.array(dtype=dtype, ndim=ndim)
        wp.overload(kernel, types)


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


@wp.func
def _key(zw: wp.float64, t: int) -> wp.int64:
    q = wp.int64((zw * wp.float64(0.5) + wp.float64(0.5)) * wp.float64(DEPTH_SCALE))
    return q * wp.int64(TRI_SHIFT) + wp.int64(t)


@wp.func
def screen_area(sa: wp.vec4d, sb: wp.vec4d, sc: wp.vec4d) -> wp.float64:
    """Twice the signed area of the projected triangle in pixel coordinates (rows point down)."""
    return (sb[0] - sa[0]) * (sc[1] - sa[1]) - (sb[1] - sa[1]) * (sc[0] - sa[0])


@wp.func
def area_sign(area: wp.float64) -> wp.int8:
    """-1, 0 or 1: the triangle's orientation in pixel coordinates."""
    if area > wp.float64(0.0):
        return wp.int8(1)
    if area < wp.float64(0.0):
        return wp.int8(-1)
    return wp.int8(0)


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
    sa = scr[b, idx[0]]
    sb = scr[b, idx[1]]
    sc = scr[b, idx[2]]
    zero = wp.float64(0.0)
    if sa[3] > zero and sb[3] > zero and sc[3] > zero:
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


_overload(zbuffer_kernel, pos=(3, 0))
_overload(project_kernel, pos=(3, 0))


@wp.func
def _vert(pos: wp.array3d(dtype=Any), b: int, i: int) -> wp.vec3d:
    return wp.vec3d(wp.float64(pos[b, i, 0]), wp.float64(pos[b, i, 1]), wp.float64(pos[b, i, 3]))


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
    p0 = i * span
    p1 = wp.min(p0 + span, height * width)
    r = p0 // width
    c = p0 - r * width
    hf = wp.float64(height)
    wf = wp.float64(width)
    for _p in range(p0, p1):
        key = zbuf[b, r, c]
        if key == wp.int64(EMPTY_KEY):
            for k in range(4):
                out[b, r, c, k] = out.dtype(0.0)
        else:
            t = int(key - (key // wp.int64(TRI_SHIFT)) * wp.int64(TRI_SHIFT))
            idx = tri[t]
            va = _vert(pos, b, idx[0])
            vb = _vert(pos, b, idx[1])
            vc = _vert(pos, b, idx[2])
            p = wp.vec3d(
                wp.float64(2 * c + 1) / wf - wp.float64(1.0),
                wp.float64(1.0) - wp.float64(2 * r + 1) / hf,
                wp.float64(1.0),
            )
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
        c += 1
        if c == width:
            c = 0
            r += 1


for _s in _F:
    wp.overload(
        resolve_kernel,
        {"pos": wp.array3d(dtype=_s), "out": wp.array4d(dtype=_s)},
    )


@wp.func
def _bary_grad_pixel(
    pos: wp.array3d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    b: int,
    r: int,
    c: int,
    t: int,
    g0: wp.float64,
    g1: wp.float64,
    gz: wp.float64,
    height: int,
    width: int,
    gpos: wp.array3d(dtype=Any),
):
    """Adds d loss / d pos of pixel (r, c) covered by triangle t, given d loss / d (u, v, z/w)."""
    idx = tri[t]
    va = _vert(pos, b, idx[0])
    vb = _vert(pos, b, idx[1])
    vc = _vert(pos, b, idx[2])
    za = wp.float64(pos[b, idx[0], 2])
    zb = wp.float64(pos[b, idx[1], 2])
    zc = wp.float64(pos[b, idx[2], 2])
    p = wp.vec3d(
        wp.float64(2 * c + 1) / wp.float64(width) - wp.float64(1.0),
        wp.float64(1.0) - wp.float64(2 * r + 1) / wp.float64(height),
        wp.float64(1.0),
    )
    n0 = wp.cross(vb, vc)
    n1 = wp.cross(vc, va)
    n2 = wp.cross(va, vb)
    e0 = wp.dot(n0, p)
    e1 = wp.dot(n1, p)
    e2 = wp.dot(n2, p)
    inv_s = wp.float64(1.0) / (e0 + e1 + e2)
    inv_det = wp.float64(1.0) / wp.dot(va, n0)
    zw = (e0 * za + e1 * zb + e2 * zc) * inv_det
    dot = (g0 * e0 + g1 * e1) * inv_s
    gzd = gz * inv_det
    ge0 = (g0 - dot) * inv_s + gzd * za
    ge1 = (g1 - dot) * inv_s + gzd * zb
    ge2 = -dot * inv_s + gzd * zc
    gdet = -gzd * zw
    ga = ge1 * wp.cross(p, vc) + ge2 * wp.cross(vb, p) + gdet * n0
    gb = ge0 * wp.cross(vc, p) + ge2 * wp.cross(p, va) + gdet * n1
    gc = ge0 * wp.cross(p, vb) + ge1 * wp.cross(va, p) + gdet * n2
    _add4(gpos, b, idx[0], ga, gzd * e0)
    _add4(gpos, b, idx[1], gb, gzd * e1)
    _add4(gpos, b, idx[2], gc, gzd * e2)


@wp.func
def _bary_uv_grad_pixel(
    pos4: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    b: int,
    r: int,
    c: int,
    t: int,
    g0: wp.float64,
    g1: wp.float64,
    height: int,
    width: int,
    gpos4: wp.array2d(dtype=Any),
):
    """``_bary_grad_pixel`` without a z/w gradient (u and v do not depend on z: nothing goes to channel 2),
    on ``[B,V]`` arrays of vec4 rows."""
    idx = tri[t]
    qa = wp.vec4d(pos4[b, idx[0]])
    qb = wp.vec4d(pos4[b, idx[1]])
    qc = wp.vec4d(pos4[b, idx[2]])
    va = wp.vec3d(qa[0], qa[1], qa[3])
    vb = wp.vec3d(qb[0], qb[1], qb[3])
    vc = wp.vec3d(qc[0], qc[1], qc[3])
    p = wp.vec3d(
        wp.float64(2 * c + 1) / wp.float64(width) - wp.float64(1.0),
        wp.float64(1.0) - wp.float64(2 * r + 1) / wp.float64(height),
        wp.float64(1.0),
    )
    e0 = wp.dot(wp.cross(vb, vc), p)
    e1 = wp.dot(wp.cross(vc, va), p)
    e2 = wp.dot(wp.cross(va, vb), p)
    inv_s = wp.float64(1.0) / (e0 + e1 + e2)
    dot = (g0 * e0 + g1 * e1) * inv_s
    ge0 = (g0 - dot) * inv_s
    ge1 = (g1 - dot) * inv_s
    ge2 = -dot * inv_s
    _add4v(gpos4, b, idx[0], ge1 * wp.cross(p, vc) + ge2 * wp.cross(vb, p))
    _add4v(gpos4, b, idx[1], ge0 * wp.cross(vc, p) + ge2 * wp.cross(p, va))
    _add4v(gpos4, b, idx[2], ge0 * wp.cross(p, vb) + ge1 * wp.cross(va, p))


@wp.func
def _add4v(gpos4: wp.array2d(dtype=Any), b: int, i: int, gxyw: wp.vec3d):
    wp.atomic_add(gpos4, b, i, gpos4.dtype(wp.vec4d(gxyw[0], gxyw[1], wp.float64(0.0), gxyw[2])))


@wp.kernel
def bary_grad_kernel(
    pos: wp.array3d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array4d(dtype=Any),
    grad: wp.array4d(dtype=Any),
    height: int,
    width: int,
    span: int,
    b: int,
    gpos: wp.array3d(dtype=wp.float64),
):
    """d loss / d pos from d loss / d (u, v, z/w) (``builtin_backend.barycentric_backward``'s maths) for
    pixels ``[i * span, (i + 1) * span)`` of batch item b; accumulates into float64 ``gpos [B,V,4]``."""
    i = wp.tid()
    p0 = i * span
    p1 = wp.min(p0 + span, height * width)
    r = p0 // width
    c = p0 - r * width
    for _p in range(p0, p1):
        tf = rast[b, r, c, 3]
        if tf > rast.dtype(0.0):
            g0 = wp.float64(grad[b, r, c, 0])
            g1 = wp.float64(grad[b, r, c, 1])
            gz = wp.float64(grad[b, r, c, 2])
            _bary_grad_pixel(pos, tri, b, r, c, int(tf) - 1, g0, g1, gz, height, width, gpos)
        c += 1
        if c == width:
            c = 0
            r += 1


@wp.kernel
def bary_grad_packed_kernel(
    pos: wp.array3d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array2d(dtype=Any),
    pix: wp.array(dtype=wp.int64),
    grad: wp.array2d(dtype=Any),
    height: int,
    width: int,
    b: int,
    gpos: wp.array3d(dtype=wp.float64),
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
    _bary_grad_pixel(pos, tri, b, r, c, int(rast[q, 3]) - 1, g0, g1, wp.float64(0.0), height, width, gpos)


@wp.func
def _add4(gpos: wp.array3d(dtype=Any), b: int, i: int, gxyw: wp.vec3d, gz: wp.float64):
    wp.atomic_add(gpos, b, i, 0, gpos.dtype(gxyw[0]))
    wp.atomic_add(gpos, b, i, 1, gpos.dtype(gxyw[1]))
    wp.atomic_add(gpos, b, i, 2, gpos.dtype(gz))
    wp.atomic_add(gpos, b, i, 3, gpos.dtype(gxyw[2]))


for _s in _F:
    wp.overload(
        bary_grad_kernel,
        {"pos": wp.array3d(dtype=_s), "rast": wp.array4d(dtype=_s), "grad": wp.array4d(dtype=_s)},
    )
    wp.overload(
        bary_grad_packed_kernel,
        {"pos": wp.array3d(dtype=_s), "rast": wp.array2d(dtype=_s), "grad": wp.array2d(dtype=_s)},
    )


# ---------------------------------------------------------------------------------------------------------
# interpolate on a compact list of covered pixels


@wp.kernel
def interp_fwd_kernel(
    attr: wp.array2d(dtype=Any),
    rast: wp.array2d(dtype=Any),
    pix: wp.array(dtype=wp.int64),
    tri: wp.array(dtype=wp.vec3i),
    off: int,
    full: int,
    out: wp.array2d(dtype=Any),
):
    """Covered pixel p = ``pix[p]`` (flat index into ``rast [B*H*W,4]``): ``a2 + u (a0 - a2) + v (a1 - a2)``
    into row ``pix[p]`` of out (``full`` != 0) or row p (packed). ``off`` is added to the vertex indices
    (the batch item's first row when attr is per item): a launch covers pixels of one batch item."""
    p = wp.tid()
    q = int(pix[p])
    u = rast[q, 0]
    v = rast[q, 1]
    idx = tri[int(rast[q, 3]) - 1]
    rows = wp.vec3i(idx[0] + off, idx[1] + off, idx[2] + off)
    o = p
    if full != 0:
        o = q
    for k in range(attr.shape[1]):
        a2 = attr[rows[2], k]
        out[o, k] = a2 + u * (attr[rows[0], k] - a2) + v * (attr[rows[1], k] - a2)


@wp.kernel
def interp_bwd_kernel(
    attr: wp.array2d(dtype=Any),
    rast: wp.array2d(dtype=Any),
    pix: wp.array(dtype=wp.int64),
    tri: wp.array(dtype=wp.vec3i),
    off: int,
    full: int,
    grad: wp.array2d(dtype=Any),
    want_attr: int,
    grad_attr: wp.array2d(dtype=Any),
    grad_rast: wp.array2d(dtype=Any),
):
    """grad_attr[a_k] += w_k g (w = u, v, 1 - u - v); d/du = g . (a0 - a2), d/dv = g . (a1 - a2) written
    into ``grad_rast`` (zero elsewhere)."""
    p = wp.tid()
    q = int(pix[p])
    u = rast[q, 0]
    v = rast[q, 1]
    w = rast.dtype(1.0) - u - v
    idx = tri[int(rast[q, 3]) - 1]
    rows = wp.vec3i(idx[0] + off, idx[1] + off, idx[2] + off)
    o = p
    if full != 0:
        o = q
    gu = rast.dtype(0.0)
    gv = rast.dtype(0.0)
    for k in range(attr.shape[1]):
        g = grad[o, k]
        a2 = attr[rows[2], k]
        gu += g * (attr[rows[0], k] - a2)
        gv += g * (attr[rows[1], k] - a2)
        if want_attr != 0:
            wp.atomic_add(grad_attr, rows[0], k, u * g)
            wp.atomic_add(grad_attr, rows[1], k, v * g)
            wp.atomic_add(grad_attr, rows[2], k, w * g)
    grad_rast[q, 0] = gu
    grad_rast[q, 1] = gv


_overload(interp_fwd_kernel, attr=(2, 0), rast=(2, 0), out=(2, 0))
_overload(interp_bwd_kernel, attr=(2, 0), rast=(2, 0), grad=(2, 0), grad_attr=(2, 0), grad_rast=(2, 0))


# ---------------------------------------------------------------------------------------------------------
# antialias: find the silhouette pixel pairs (the blend itself is differentiable PyTorch on that short list)


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
    idx = tri[t]
    sa = scr[b, idx[0]]
    sb = scr[b, idx[1]]
    sc = scr[b, idx[2]]
    zero = wp.float64(0.0)
    res = wp.int8(2)
    if sa[3] > zero and sb[3] > zero and sc[3] > zero:
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
    p0 = i * span
    p1 = wp.min(p0 + span, height * width)
    r = p0 // width
    c = p0 - r * width
    for _p in range(p0, p1):
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
        c += 1
        if c == width:
            c = 0
            r += 1


@wp.func
def _cross2(a: wp.vec2d, b: wp.vec2d) -> wp.float64:
    return a[0] * b[1] - a[1] * b[0]


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


for _s in _F:
    wp.overload(silhouette_kernel, {"rast": wp.array4d(dtype=_s)})


# ---------------------------------------------------------------------------------------------------------
# area-weighted vertex normals: m_v = sum over the triangles of v of (v1 - v0) x (v2 - v0)


@wp.kernel
def face_normal_sum_kernel(
    verts: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    b: int,
    out: wp.array2d(dtype=Any),
):
    """Adds each triangle's unnormalised (2 x area) normal to its three vertices' rows of ``out``. Arrays of
    vec3 rows: one address computation per vertex (scalar 3-D indexing costs Warp's CPU code ~2x)."""
    t = wp.tid()
    idx = tri[t]
    a = verts[b, idx[0]]
    n = wp.cross(verts[b, idx[1]] - a, verts[b, idx[2]] - a)
    wp.atomic_add(out, b, idx[0], n)
    wp.atomic_add(out, b, idx[1], n)
    wp.atomic_add(out, b, idx[2], n)


@wp.kernel
def face_normal_sum_bwd_kernel(
    verts: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    grad: wp.array2d(dtype=Any),
    b: int,
    gverts: wp.array2d(dtype=Any),
):
    """Backward of ``face_normal_sum_kernel``: g_n = sum of the vertices' gradients; n = e1 x e2 gives
    g_e1 = e2 x g_n, g_e2 = g_n x e1; v1 gets g_e1, v2 gets g_e2, v0 gets -(g_e1 + g_e2)."""
    t = wp.tid()
    idx = tri[t]
    a = verts[b, idx[0]]
    e1 = verts[b, idx[1]] - a
    e2 = verts[b, idx[2]] - a
    g = grad[b, idx[0]] + grad[b, idx[1]] + grad[b, idx[2]]
    g1 = wp.cross(e2, g)
    g2 = wp.cross(g, e1)
    wp.atomic_add(gverts, b, idx[1], g1)
    wp.atomic_add(gverts, b, idx[2], g2)
    wp.atomic_sub(gverts, b, idx[0], g1 + g2)


for _v in (wp.vec3f, wp.vec3d):
    _r = wp.array2d(dtype=_v)
    wp.overload(face_normal_sum_kernel, {"verts": _r, "out": _r})
    wp.overload(face_normal_sum_bwd_kernel, {"verts": _r, "grad": _r, "gverts": _r})


# ---------------------------------------------------------------------------------------------------------
# MeshRenderer's per-pixel stage in one pass: interpolate albedo, normal and depth at a covered pixel,
# normalise the normal, SH-shade, write colour + coverage + depth (and the matching backward).

vec9d = wp.types.vector(length=9, dtype=wp.float64)
mat39d = wp.types.matrix(shape=(3, 9), dtype=wp.float64)


@wp.func
def _sh9(n: wp.vec3d) -> vec9d:
    """The SH basis of a unit normal without its constants (``shade_pixels`` folds them into gamma)."""
    x = n[0]
    y = n[1]
    z = n[2]
    return vec9d(
        wp.float64(1.0),
        -y,
        z,
        -x,
        x * y,
        -y * z,
        wp.float64(3.0) * z * z - wp.float64(1.0),
        -x * z,
        x * x - y * y,
    )


@wp.func
def _lerp3(a0: wp.float64, a1: wp.float64, a2: wp.float64, u: wp.float64, v: wp.float64) -> wp.float64:
    # the same expression as interp_fwd_kernel: a2 + u (a0 - a2) + v (a1 - a2)
    return a2 + u * (a0 - a2) + v * (a1 - a2)


@wp.func
def _gamma_row(gamma: wp.array3d(dtype=Any), b: int, k: int) -> vec9d:
    return vec9d(
        wp.float64(gamma[b, k, 0]),
        wp.float64(gamma[b, k, 1]),
        wp.float64(gamma[b, k, 2]),
        wp.float64(gamma[b, k, 3]),
        wp.float64(gamma[b, k, 4]),
        wp.float64(gamma[b, k, 5]),
        wp.float64(gamma[b, k, 6]),
        wp.float64(gamma[b, k, 7]),
        wp.float64(gamma[b, k, 8]),
    )


@wp.func
def _lerp_rows(rows: wp.array(dtype=Any), r: wp.vec3i, u: wp.float64, v: wp.float64) -> wp.vec3d:
    """``a2 + u (a0 - a2) + v (a1 - a2)`` of three vec3 rows, in float64."""
    a2 = wp.vec3d(rows[r[2]])
    return a2 + u * (wp.vec3d(rows[r[0]]) - a2) + v * (wp.vec3d(rows[r[1]]) - a2)


@wp.kernel
def shade_fwd_kernel(
    rast: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    albedo: wp.array2d(dtype=Any),
    alb_off: int,
    albedo3: wp.array(dtype=Any),
    normals3: wp.array(dtype=Any),
    vdepth: wp.array(dtype=Any),
    gamma: wp.array3d(dtype=Any),
    lit: int,
    n_vert: int,
    hw: int,
    span: int,
    b: int,
    bg: wp.array2d(dtype=Any),
    out: wp.array2d(dtype=Any),
    depth: wp.array(dtype=Any),
):
    """Pixels ``[i * span, (i + 1) * span)`` of batch item b (flat rows of ``rast [B*H*W,4]``): on a covered
    pixel, ``out[q, :C] = albedo * (gamma_c . Y(n))`` (``albedo`` when ``lit`` is 0), ``out[q, C] = 1`` and
    ``depth[q]`` the interpolated ``vdepth``; an empty pixel gets the background ``bg`` (``[1,C]`` or
    ``[B*H*W,C]``), coverage 0 and depth 0. ``n`` is the interpolated vertex normal renormalised (``x /
    max(|x|, 1e-12)``, as ``F.normalize``). Rows: albedo ``idx + b * alb_off`` (0: shared by the batch),
    normals and depth ``idx + b * n_vert``."""
    i = wp.tid()
    q0 = b * hw + i * span
    q1 = wp.min(q0 + span, (b + 1) * hw)
    n_ch = albedo.shape[1]
    gam0 = vec9d()
    gam1 = vec9d()
    gam2 = vec9d()
    if lit != 0:  # this item's coefficients, loaded once per thread
        gam0 = _gamma_row(gamma, b, 0)
        gam1 = _gamma_row(gamma, b, 1)
        gam2 = _gamma_row(gamma, b, 2)
    for q in range(q0, q1):
        tf = rast[q, 3]
        if tf <= rast.dtype(0.0):
            qb = 0  # the background: one row for all pixels, or one per pixel
            if bg.shape[0] > 1:
                qb = q
            for k in range(n_ch):
                out[q, k] = bg[qb, k]
            out[q, n_ch] = out.dtype(0.0)
            depth[q] = depth.dtype(0.0)
            continue
        u = wp.float64(rast[q, 0])
        v = wp.float64(rast[q, 1])
        idx = tri[int(tf) - 1]
        ra = wp.vec3i(idx[0] + b * alb_off, idx[1] + b * alb_off, idx[2] + b * alb_off)
        rn = wp.vec3i(idx[0] + b * n_vert, idx[1] + b * n_vert, idx[2] + b * n_vert)
        if lit != 0:  # C = 3: whole-vector maths (no per-element writes to local vectors)
            m = _lerp_rows(normals3, rn, u, v)
            y = _sh9(m / wp.max(wp.length(m), wp.float64(1e-12)))
            a = _lerp_rows(albedo3, ra, u, v)
            out[q, 0] = out.dtype(a[0] * wp.dot(gam0, y))
            out[q, 1] = out.dtype(a[1] * wp.dot(gam1, y))
            out[q, 2] = out.dtype(a[2] * wp.dot(gam2, y))
        else:
            for k in range(n_ch):
                a0 = wp.float64(albedo[ra[0], k])
                a1 = wp.float64(albedo[ra[1], k])
                out[q, k] = out.dtype(_lerp3(a0, a1, wp.float64(albedo[ra[2], k]), u, v))
        out[q, n_ch] = out.dtype(1.0)
        d = _lerp3(wp.float64(vdepth[rn[0]]), wp.float64(vdepth[rn[1]]), wp.float64(vdepth[rn[2]]), u, v)
        depth[q] = depth.dtype(d)


@wp.kernel
def shade_bwd_kernel(
    pos4: wp.array2d(dtype=Any),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array2d(dtype=Any),
    albedo: wp.array2d(dtype=Any),
    alb_off: int,
    albedo3: wp.array(dtype=Any),
    normals3: wp.array(dtype=Any),
    vdepth: wp.array(dtype=Any),
    gamma: wp.array3d(dtype=Any),
    lit: int,
    n_vert: int,
    height: int,
    width: int,
    span: int,
    b: int,
    gout: wp.array2d(dtype=Any),
    gdepth: wp.array(dtype=Any),
    want_depth: int,
    want_albedo: int,
    want_pos: int,
    g_albedo: wp.array2d(dtype=Any),
    g_albedo3: wp.array(dtype=Any),
    g_normals3: wp.array(dtype=Any),
    g_vdepth: wp.array(dtype=Any),
    g_gamma: wp.array3d(dtype=wp.float64),
    gpos4: wp.array2d(dtype=Any),
):
    """Backward of ``shade_fwd_kernel`` over the same pixels: adds into the per-vertex gradients of albedo,
    normals and depth (barycentric weights), into ``g_gamma [B,3,9]`` (summed over the span first) and,
    through d(out)/d(u, v), into the clip-space positions (``_bary_grad_pixel``). The coverage channel is
    constant on covered pixels: its gradient goes nowhere here (antialias carries silhouette gradients)."""
    i = wp.tid()
    hw = height * width
    q0 = b * hw + i * span
    q1 = wp.min(q0 + span, (b + 1) * hw)
    n_ch = albedo.shape[1]
    acc = mat39d()
    eps = wp.float64(1e-12)
    gam0 = vec9d()
    gam1 = vec9d()
    gam2 = vec9d()
    if lit != 0:
        gam0 = _gamma_row(gamma, b, 0)
        gam1 = _gamma_row(gamma, b, 1)
        gam2 = _gamma_row(gamma, b, 2)
    for q in range(q0, q1):
        tf = rast[q, 3]
        if tf <= rast.dtype(0.0):
            continue
        u = wp.float64(rast[q, 0])
        v = wp.float64(rast[q, 1])
        w = wp.float64(1.0) - u - v
        t = int(tf) - 1
        idx = tri[t]
        ra = wp.vec3i(idx[0] + b * alb_off, idx[1] + b * alb_off, idx[2] + b * alb_off)
        rn = wp.vec3i(idx[0] + b * n_vert, idx[1] + b * n_vert, idx[2] + b * n_vert)
        gu = wp.float64(0.0)
        gv = wp.float64(0.0)
        if lit != 0:  # C = 3, whole-vector maths
            m = _lerp_rows(normals3, rn, u, v)
            len_m = wp.length(m)
            nrm = wp.max(len_m, eps)
            n = m / nrm
            y = _sh9(n)
            a0 = wp.vec3d(albedo3[ra[0]])
            a1 = wp.vec3d(albedo3[ra[1]])
            a2 = wp.vec3d(albedo3[ra[2]])
            a = a2 + u * (a0 - a2) + v * (a1 - a2)
            g = wp.vec3d(wp.float64(gout[q, 0]), wp.float64(gout[q, 1]), wp.float64(gout[q, 2]))
            light = wp.vec3d(wp.dot(gam0, y), wp.dot(gam1, y), wp.dot(gam2, y))
            gl = wp.cw_mul(g, a)  # d loss / d light
            acc += wp.outer(gl, y)
            gy = gl[0] * gam0 + gl[1] * gam1 + gl[2] * gam2  # d loss / d Y
            ga = wp.cw_mul(g, light)  # d loss / d albedo at the pixel
            if want_albedo != 0:
                wp.atomic_add(g_albedo3, ra[0], g_albedo3.dtype(u * ga))
                wp.atomic_add(g_albedo3, ra[1], g_albedo3.dtype(v * ga))
                wp.atomic_add(g_albedo3, ra[2], g_albedo3.dtype(w * ga))
            gu += wp.dot(ga, a0 - a2)
            gv += wp.dot(ga, a1 - a2)
            # d Y / d n of the bare basis (1, -y, z, -x, xy, -yz, 3z^2 - 1, -xz, x^2 - y^2)
            gn = wp.vec3d(
                -gy[3] + gy[4] * n[1] - gy[7] * n[2] + wp.float64(2.0) * n[0] * gy[8],
                -gy[1] + gy[4] * n[0] - gy[5] * n[2] - wp.float64(2.0) * n[1] * gy[8],
                gy[2] - gy[5] * n[1] + wp.float64(6.0) * n[2] * gy[6] - gy[7] * n[0],
            )
            # through n = m / max(|m|, eps)
            gm = gn / nrm
            if len_m > eps:
                gm = (gn - n * wp.dot(n, gn)) / nrm
            wp.atomic_add(g_normals3, rn[0], g_normals3.dtype(u * gm))
            wp.atomic_add(g_normals3, rn[1], g_normals3.dtype(v * gm))
            wp.atomic_add(g_normals3, rn[2], g_normals3.dtype(w * gm))
            n2 = wp.vec3d(normals3[rn[2]])
            gu += wp.dot(gm, wp.vec3d(normals3[rn[0]]) - n2)
            gv += wp.dot(gm, wp.vec3d(normals3[rn[1]]) - n2)
        else:
            for k in range(n_ch):
                a0s = wp.float64(albedo[ra[0], k])
                a1s = wp.float64(albedo[ra[1], k])
                a2s = wp.float64(albedo[ra[2], k])
                gs = wp.float64(gout[q, k])
                if want_albedo != 0:
                    wp.atomic_add(g_albedo, ra[0], k, g_albedo.dtype(u * gs))
                    wp.atomic_add(g_albedo, ra[1], k, g_albedo.dtype(v * gs))
                    wp.atomic_add(g_albedo, ra[2], k, g_albedo.dtype(w * gs))
                gu += gs * (a0s - a2s)
                gv += gs * (a1s - a2s)
        if want_depth != 0:
            gd = wp.float64(gdepth[q])
            wp.atomic_add(g_vdepth, rn[0], g_vdepth.dtype(u * gd))
            wp.atomic_add(g_vdepth, rn[1], g_vdepth.dtype(v * gd))
            wp.atomic_add(g_vdepth, rn[2], g_vdepth.dtype(w * gd))
            d2 = wp.float64(vdepth[rn[2]])
            gu += gd * (wp.float64(vdepth[rn[0]]) - d2)
            gv += gd * (wp.float64(vdepth[rn[1]]) - d2)
        if want_pos != 0:
            rc = q - b * hw
            r = rc // width
            _bary_uv_grad_pixel(pos4, tri, b, r, rc - r * width, t, gu, gv, height, width, gpos4)
    if lit != 0:
        for k in range(3):
            for j in range(9):
                wp.atomic_add(g_gamma, b, k, j, acc[k, j])


for _s in _F:
    _a2 = wp.array2d(dtype=_s)
    _a1 = wp.array(dtype=_s)
    _v1 = wp.array(dtype=wp.types.vector(3, _s))
    wp.overload(
        shade_fwd_kernel,
        {
            "rast": _a2,
            "albedo": _a2,
            "albedo3": _v1,
            "normals3": _v1,
            "vdepth": _a1,
            "gamma": wp.array3d(dtype=_s),
            "bg": _a2,
            "out": _a2,
            "depth": _a1,
        },
    )
    wp.overload(
        shade_bwd_kernel,
        {
            "pos4": wp.array2d(dtype=wp.types.vector(4, _s)),
            "rast": _a2,
            "albedo": _a2,
            "albedo3": _v1,
            "normals3": _v1,
            "vdepth": _a1,
            "gamma": wp.array3d(dtype=_s),
            "gout": _a2,
            "gdepth": _a1,
            "g_albedo": _a2,
            "g_albedo3": _v1,
            "g_normals3": _v1,
            "g_vdepth": _a1,
            "gpos4": wp.array2d(dtype=wp.types.vector(4, _s)),
        },
    )


# ---------------------------------------------------------------------------------------------------------
# per-vertex visibility from the z-buffer (renderer.vertex_visibility's rule)


@wp.kernel
def visibility_kernel(
    pos: wp.array3d(dtype=Any),
    vdepth: wp.array2d(dtype=Any),
    depth: wp.array3d(dtype=Any),
    rast: wp.array4d(dtype=Any),
    tol: wp.array(dtype=Any),
    b: int,
    visible: wp.array2d(dtype=wp.bool),
):
    """Vertex i of item b is visible when it projects (w > 0) inside the image onto a covered pixel whose
    depth is not more than ``tol[b]`` nearer than the vertex. The same float ops, in pos's dtype, as
    ``vertex_visibility``'s PyTorch code, so the two agree exactly."""
    i = wp.tid()
    height = depth.shape[1]
    width = depth.shape[2]
    w = pos[b, i, 3]
    res = False
    if w > pos.dtype(0.0):
        col = int(wp.floor((pos[b, i, 0] / w + pos.dtype(1.0)) * pos.dtype(width) * pos.dtype(0.5)))
        row = int(wp.floor((pos.dtype(1.0) - pos[b, i, 1] / w) * pos.dtype(height) * pos.dtype(0.5)))
        if col >= 0 and col < width and row >= 0 and row < height:
            if rast[b, row, col, 3] > rast.dtype(0.0):
                res = vdepth[b, i] <= depth[b, row, col] + tol[b]
    visible[b, i] = res


for _s in _F:
    wp.overload(
        visibility_kernel,
        {
            "pos": wp.array3d(dtype=_s),
            "vdepth": wp.array2d(dtype=_s),
            "depth": wp.array3d(dtype=_s),
            "rast": wp.array4d(dtype=_s),
            "tol": wp.array(dtype=_s),
        },
    )


@wp.kernel
def normalize_rows_kernel(m: wp.array3d(dtype=Any), b: int, out: wp.array3d(dtype=Any)):
    """``out[b, i] = m[b, i] / max(|m[b, i]|, 1e-12)`` (``F.normalize``'s rule)."""
    i = wp.tid()
    x = m[b, i, 0]
    y = m[b, i, 1]
    z = m[b, i, 2]
    inv = m.dtype(1.0) / wp.max(wp.sqrt(x * x + y * y + z * z), m.dtype(1e-12))
    out[b, i, 0] = x * inv
    out[b, i, 1] = y * inv
    out[b, i, 2] = z * inv


@wp.kernel
def normalize_rows_bwd_kernel(
    m: wp.array3d(dtype=Any), grad: wp.array3d(dtype=Any), b: int, out: wp.array3d(dtype=Any)
):
    """Backward of ``normalize_rows_kernel``: ``(g - n (n . g)) / |m|``, or ``g / eps`` where ``|m| <= eps``
    (the clamp passes no gradient), written into ``out``."""
    i = wp.tid()
    x = m[b, i, 0]
    y = m[b, i, 1]
    z = m[b, i, 2]
    gx = grad[b, i, 0]
    gy = grad[b, i, 1]
    gz = grad[b, i, 2]
    length = wp.sqrt(x * x + y * y + z * z)
    eps = m.dtype(1e-12)
    if length > eps:
        inv = m.dtype(1.0) / length
        d = (x * gx + y * gy + z * gz) * inv * inv
        out[b, i, 0] = (gx - x * d) * inv
        out[b, i, 1] = (gy - y * d) * inv
        out[b, i, 2] = (gz - z * d) * inv
    else:
        out[b, i, 0] = gx / eps
        out[b, i, 1] = gy / eps
        out[b, i, 2] = gz / eps


_overload(normalize_rows_kernel, m=(3, 0), out=(3, 0))
_overload(normalize_rows_bwd_kernel, m=(3, 0), grad=(3, 0), out=(3, 0))

"""Warp kernels of the builtin rasterizer (one source for CPU and CUDA).

Two passes, both exact in float64:

1. ``zbuffer``: one thread per (batch, triangle). Olano–Greer homogeneous edge functions
   ``e_i = (V_j x V_k) . p`` with ``V = (x, y, w)`` and ``p = (ndc_x, ndc_y, 1)``; a pixel is inside where
   every
   ``lambda_i = e_i / det`` is >= 0 and ``sum(lambda) > 0`` (i.e. w > 0), and ``z/w = sum(lambda_i z_i)``.
   Triangles crossing the near plane need no clipping. The nearest ``z/w`` wins through an int64 atomic-min on
   a packed key ``(quantised depth << 32) | triangle``.
2. ``resolve``: one thread per pixel recomputes the winning triangle's perspective-correct barycentrics.
"""

from __future__ import annotations

import warp as wp

wp.config.quiet = True
if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting, no CPU-only CUDA warning
    wp.config.log_level = wp.LOG_ERROR

EMPTY_KEY = 9223372036854775807  # int64 max: no triangle
DEPTH_SCALE = 2147483648.0  # 2^31 depth levels over z/w in [-1, 1]


@wp.kernel
def zbuffer_kernel(
    pos: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    height: int,
    width: int,
    cull: int,
    b0: int,
    zbuf: wp.array3d(dtype=wp.int64),
):
    i = wp.tid()
    n_tri = tri.shape[0]
    b = i // n_tri
    t = i - b * n_tri
    b = b + b0
    idx = tri[t]
    pa = pos[b, idx[0]]
    pb = pos[b, idx[1]]
    pc = pos[b, idx[2]]
    if pa[3] <= 0.0 and pb[3] <= 0.0 and pc[3] <= 0.0:
        return
    hf = wp.float64(height)
    wf = wp.float64(width)
    half = wp.float64(0.5)
    c0 = wp.float64(0.0)
    c1 = wf - wp.float64(1.0)
    r0 = wp.float64(0.0)
    r1 = hf - wp.float64(1.0)
    if pa[3] > 0.0 and pb[3] > 0.0 and pc[3] > 0.0:
        # pixel-index coordinates of the projected vertices: column c samples ndc_x = (2c+1)/W - 1
        xa = (pa[0] / pa[3] + wp.float64(1.0)) * wf * half - half
        xb = (pb[0] / pb[3] + wp.float64(1.0)) * wf * half - half
        xc = (pc[0] / pc[3] + wp.float64(1.0)) * wf * half - half
        ya = (wp.float64(1.0) - pa[1] / pa[3]) * hf * half - half
        yb = (wp.float64(1.0) - pb[1] / pb[3]) * hf * half - half
        yc = (wp.float64(1.0) - pc[1] / pc[3]) * hf * half - half
        c0 = wp.max(c0, wp.ceil(wp.min(xa, wp.min(xb, xc)) - wp.float64(1e-9)))
        c1 = wp.min(c1, wp.floor(wp.max(xa, wp.max(xb, xc)) + wp.float64(1e-9)))
        r0 = wp.max(r0, wp.ceil(wp.min(ya, wp.min(yb, yc)) - wp.float64(1e-9)))
        r1 = wp.min(r1, wp.floor(wp.max(ya, wp.max(yb, yc)) + wp.float64(1e-9)))
    if c1 < c0 or r1 < r0:
        return  # most small triangles end here: no pixel centre inside their bounding box
    va = wp.vec3d(pa[0], pa[1], pa[3])
    vb = wp.vec3d(pb[0], pb[1], pb[3])
    vc = wp.vec3d(pc[0], pc[1], pc[3])
    n0 = wp.cross(vb, vc)
    n1 = wp.cross(vc, va)
    n2 = wp.cross(va, vb)
    det = wp.dot(va, n0)
    if det == 0.0:
        return
    if cull != 0 and det < 0.0:
        return
    # scale the normals so that lambda_i = n_i . p directly
    inv = wp.float64(1.0) / det
    n0 = n0 * inv
    n1 = n1 * inv
    n2 = n2 * inv
    ci0 = int(c0)
    ci1 = int(c1)
    for r in range(int(r0), int(r1) + 1):
        ny = wp.float64(1.0) - wp.float64(2 * r + 1) / hf
        for c in range(ci0, ci1 + 1):
            nx = wp.float64(2 * c + 1) / wf - wp.float64(1.0)
            p = wp.vec3d(nx, ny, wp.float64(1.0))
            l0 = wp.dot(n0, p)
            l1 = wp.dot(n1, p)
            l2 = wp.dot(n2, p)
            if l0 >= 0.0 and l1 >= 0.0 and l2 >= 0.0 and l0 + l1 + l2 > 0.0:
                zw = l0 * pa[2] + l1 * pb[2] + l2 * pc[2]
                if zw >= -1.0 and zw <= 1.0:
                    q = wp.int64((zw * half + half) * wp.float64(DEPTH_SCALE))
                    key = q * wp.int64(4294967296) + wp.int64(t)
                    wp.atomic_min(zbuf, b, r, c, key)


@wp.kernel
def resolve_kernel(
    pos: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    zbuf: wp.array3d(dtype=wp.int64),
    height: int,
    width: int,
    b0: int,
    out: wp.array3d(dtype=wp.vec4d),
):
    i = wp.tid()
    hw = height * width
    b = i // hw
    rc = i - b * hw
    r = rc // width
    c = rc - r * width
    b = b + b0
    key = zbuf[b, r, c]
    if key == wp.int64(EMPTY_KEY):
        out[b, r, c] = wp.vec4d(0.0, 0.0, 0.0, 0.0)
        return
    t = int(key - (key // wp.int64(4294967296)) * wp.int64(4294967296))
    idx = tri[t]
    pa = pos[b, idx[0]]
    pb = pos[b, idx[1]]
    pc = pos[b, idx[2]]
    va = wp.vec3d(pa[0], pa[1], pa[3])
    vb = wp.vec3d(pb[0], pb[1], pb[3])
    vc = wp.vec3d(pc[0], pc[1], pc[3])
    p = wp.vec3d(
        wp.float64(2 * c + 1) / wp.float64(width) - wp.float64(1.0),
        wp.float64(1.0) - wp.float64(2 * r + 1) / wp.float64(height),
        wp.float64(1.0),
    )
    e0 = wp.dot(wp.cross(vb, vc), p)
    e1 = wp.dot(wp.cross(vc, va), p)
    e2 = wp.dot(wp.cross(va, vb), p)
    s = e0 + e1 + e2
    det = wp.dot(va, wp.cross(vb, vc))
    zw = (e0 * pa[2] + e1 * pb[2] + e2 * pc[2]) / det
    out[b, r, c] = wp.vec4d(e0 / s, e1 / s, zw, wp.float64(t + 1))


@wp.kernel
def bary_grad_kernel(
    pos: wp.array2d(dtype=wp.vec4d),
    tri: wp.array(dtype=wp.vec3i),
    rast: wp.array3d(dtype=wp.vec4d),
    grad: wp.array3d(dtype=wp.vec4d),
    height: int,
    width: int,
    b0: int,
    gpos: wp.array2d(dtype=wp.vec4d),
):
    """d loss / d pos from d loss / d (u, v, z/w); the maths is ``builtin_backend.barycentric_backward``'s."""
    i = wp.tid()
    hw = height * width
    b = i // hw
    rc = i - b * hw
    r = rc // width
    c = rc - r * width
    b = b + b0
    rv = rast[b, r, c]
    if rv[3] <= 0.0:
        return
    g = grad[b, r, c]
    t = int(rv[3]) - 1
    idx = tri[t]
    pa = pos[b, idx[0]]
    pb = pos[b, idx[1]]
    pc = pos[b, idx[2]]
    va = wp.vec3d(pa[0], pa[1], pa[3])
    vb = wp.vec3d(pb[0], pb[1], pb[3])
    vc = wp.vec3d(pc[0], pc[1], pc[3])
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
    s = e0 + e1 + e2
    det = wp.dot(va, n0)
    zw = (e0 * pa[2] + e1 * pb[2] + e2 * pc[2]) / det
    gz = g[2]
    dot = (g[0] * e0 + g[1] * e1) / s
    ge0 = (g[0] - dot) / s + gz * pa[2] / det
    ge1 = (g[1] - dot) / s + gz * pb[2] / det
    ge2 = (wp.float64(0.0) - dot) / s + gz * pc[2] / det
    gdet = -gz * zw / det
    ga = ge1 * wp.cross(p, vc) + ge2 * wp.cross(vb, p) + gdet * n0
    gb = ge0 * wp.cross(vc, p) + ge2 * wp.cross(p, va) + gdet * n1
    gc = ge0 * wp.cross(p, vb) + ge1 * wp.cross(va, p) + gdet * n2
    wp.atomic_add(gpos, b, idx[0], wp.vec4d(ga[0], ga[1], gz * e0 / det, ga[2]))
    wp.atomic_add(gpos, b, idx[1], wp.vec4d(gb[0], gb[1], gz * e1 / det, gb[2]))
    wp.atomic_add(gpos, b, idx[2], wp.vec4d(gc[0], gc[1], gz * e2 / det, gc[2]))

"""Shared Warp helpers of the render kernels: the float32/float64 overload declaration, the z-buffer key
constants and the wp.funcs several stages use (a pixel centre in NDC, a triangle's screen orientation, a
covered pixel's barycentric gradient, per-item row offsets).

Conventions of every kernel: arithmetic in float64 whatever the array dtype; batch item ``b`` is a launch
argument (one launch per item, re-launched with ``b`` patched, see ``facezoo.render._warp``); pixel-index
coordinates put column c's centre at x = c.
"""

from __future__ import annotations

from typing import Any

import warp as wp

wp.config.quiet = True
if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting, no CPU-only CUDA warning
    wp.config.log_level = wp.LOG_ERROR
wp.set_module_options({"enable_backward": False})  # every backward is written by hand

EMPTY_KEY = 9223372036854775807  # int64 max: no triangle
DEPTH_SCALE = 2147483648.0  # 2^31 depth levels over z/w in [-1, 1]
TRI_SHIFT = 4294967296  # 2^32

FLOATS = (wp.float32, wp.float64)


def overload(kernel, **arrays) -> None:
    """Declare the float32 and float64 overloads of a generic kernel: ``arrays`` maps each ``Any`` argument
    to ``(ndim, vector length or 0)``; all of them take the same scalar type."""
    for scalar in FLOATS:
        types = {}
        for name, (ndim, vec) in arrays.items():
            dtype = wp.types.vector(vec, scalar) if vec else scalar
            types[name] = wp.array(dtype=dtype, ndim=ndim)
        wp.overload(kernel, types)


@wp.func
def pixel_ndc(r: int, c: int, height: int, width: int) -> wp.vec3d:
    """``(ndc_x, ndc_y, 1)`` of pixel (r, c)'s centre (rows top-first, y up in NDC)."""
    return wp.vec3d(
        wp.float64(2 * c + 1) / wp.float64(width) - wp.float64(1.0),
        wp.float64(1.0) - wp.float64(2 * r + 1) / wp.float64(height),
        wp.float64(1.0),
    )


@wp.func
def offset3(idx: wp.vec3i, off: int) -> wp.vec3i:
    """A triangle's three vertex rows shifted by ``off`` (the batch item's first row of per-item arrays)."""
    return wp.vec3i(idx[0] + off, idx[1] + off, idx[2] + off)


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


@wp.func
def vert_xyw(pos: wp.array3d(dtype=Any), b: int, i: int) -> wp.vec3d:
    """The homogeneous 2D vertex ``(x, y, w)`` of clip-space row ``pos[b, i]``, in float64."""
    return wp.vec3d(wp.float64(pos[b, i, 0]), wp.float64(pos[b, i, 1]), wp.float64(pos[b, i, 3]))


@wp.func
def add4(gpos: wp.array3d(dtype=Any), b: int, i: int, gxyw: wp.vec3d, gz: wp.float64):
    wp.atomic_add(gpos, b, i, 0, gpos.dtype(gxyw[0]))
    wp.atomic_add(gpos, b, i, 1, gpos.dtype(gxyw[1]))
    wp.atomic_add(gpos, b, i, 2, gpos.dtype(gz))
    wp.atomic_add(gpos, b, i, 3, gpos.dtype(gxyw[2]))


@wp.func
def add4v(gpos4: wp.array2d(dtype=Any), b: int, i: int, gxyw: wp.vec3d):
    wp.atomic_add(gpos4, b, i, gpos4.dtype(wp.vec4d(gxyw[0], gxyw[1], wp.float64(0.0), gxyw[2])))


@wp.func
def bary_grad_pixel(
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
    va = vert_xyw(pos, b, idx[0])
    vb = vert_xyw(pos, b, idx[1])
    vc = vert_xyw(pos, b, idx[2])
    za = wp.float64(pos[b, idx[0], 2])
    zb = wp.float64(pos[b, idx[1], 2])
    zc = wp.float64(pos[b, idx[2], 2])
    p = pixel_ndc(r, c, height, width)
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
    add4(gpos, b, idx[0], ga, gzd * e0)
    add4(gpos, b, idx[1], gb, gzd * e1)
    add4(gpos, b, idx[2], gc, gzd * e2)


@wp.func
def bary_uv_grad_pixel(
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
    """``bary_grad_pixel`` without a z/w gradient (u and v do not depend on z: nothing goes to channel 2),
    on ``[B,V]`` arrays of vec4 rows."""
    idx = tri[t]
    qa = wp.vec4d(pos4[b, idx[0]])
    qb = wp.vec4d(pos4[b, idx[1]])
    qc = wp.vec4d(pos4[b, idx[2]])
    va = wp.vec3d(qa[0], qa[1], qa[3])
    vb = wp.vec3d(qb[0], qb[1], qb[3])
    vc = wp.vec3d(qc[0], qc[1], qc[3])
    p = pixel_ndc(r, c, height, width)
    e0 = wp.dot(wp.cross(vb, vc), p)
    e1 = wp.dot(wp.cross(vc, va), p)
    e2 = wp.dot(wp.cross(va, vb), p)
    inv_s = wp.float64(1.0) / (e0 + e1 + e2)
    dot = (g0 * e0 + g1 * e1) * inv_s
    ge0 = (g0 - dot) * inv_s
    ge1 = (g1 - dot) * inv_s
    ge2 = -dot * inv_s
    add4v(gpos4, b, idx[0], ge1 * wp.cross(p, vc) + ge2 * wp.cross(vb, p))
    add4v(gpos4, b, idx[1], ge0 * wp.cross(vc, p) + ge2 * wp.cross(p, va))
    add4v(gpos4, b, idx[2], ge0 * wp.cross(p, vb) + ge1 * wp.cross(va, p))

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


def _types(scalar, spec: dict) -> dict:
    """``spec``'s ``(ndim, vector length or 0)`` entries as float arrays of ``scalar``; others as they are."""
    types = {}
    for name, t in spec.items():
        if isinstance(t, tuple):
            ndim, vec = t
            t = wp.array(dtype=wp.types.vector(vec, scalar) if vec else scalar, ndim=ndim)
        types[name] = t
    return types


def overload(kernel, **arrays) -> None:
    """Declare the float32 and float64 overloads of a generic kernel: ``arrays`` maps each ``Any`` argument
    to ``(ndim, vector length or 0)`` (all of them take the same scalar type) or to a type such as
    ``structs``' value for that scalar type (a dict by scalar type)."""
    for scalar in FLOATS:
        spec = {name: t[scalar] if isinstance(t, dict) else t for name, t in arrays.items()}
        wp.overload(kernel, _types(scalar, spec))


def structs(name: str, **fields) -> dict:
    """A Warp struct per float type (``{wp.float32: ..., wp.float64: ...}``) with ``fields`` given as in
    ``overload`` (``(ndim, vector length or 0)`` for the float arrays) or as concrete types. It bundles the
    arguments that a forward and its backward kernel share (Warp has no ``**kwargs``); kernels take it as
    ``Any`` and ``overload`` picks the struct of the scalar type."""
    out = {}
    for scalar in FLOATS:
        # a class built from a dict: the modules' postponed (string) annotations could not see ``scalar``
        body = {"__annotations__": _types(scalar, fields), "__module__": __name__}
        out[scalar] = wp.struct(type(f"{name}_{scalar.__name__}", (), body))
    return out


@wp.func
def pixel_ndc(r: int, c: int, height: int, width: int) -> wp.vec3d:
    """``(ndc_x, ndc_y, 1)`` of pixel (r, c)'s centre (rows top-first, y up in NDC)."""
    return wp.vec3d(
        wp.float64(2 * c + 1) / wp.float64(width) - wp.float64(1.0),
        wp.float64(1.0) - wp.float64(2 * r + 1) / wp.float64(height),
        wp.float64(1.0),
    )


@wp.func
def pixel_run(i: int, span: int, width: int):
    """Thread i's pixels of a per-pixel kernel: row r, columns [c0, c1). ``span`` (pixels per thread) is the
    image width on CPU (a row per thread: no index division per pixel) or 1 on CUDA; runs never cross rows."""
    p0 = i * span
    r = p0 // width
    c0 = p0 - r * width
    return r, c0, wp.min(c0 + span, width)


@wp.func
def offset3(idx: wp.vec3i, off: int) -> wp.vec3i:
    """A triangle's three vertex rows shifted by ``off`` (the batch item's first row of per-item arrays)."""
    return wp.vec3i(idx[0] + off, idx[1] + off, idx[2] + off)


@wp.func
def screen_area(sa: wp.vec4d, sb: wp.vec4d, sc: wp.vec4d) -> wp.float64:
    """Twice the signed area of the projected triangle in pixel coordinates (rows point down)."""
    return (sb[0] - sa[0]) * (sc[1] - sa[1]) - (sb[1] - sa[1]) * (sc[0] - sa[0])


@wp.func
def screen_triangle(scr: wp.array2d(dtype=wp.vec4d), tri: wp.array(dtype=wp.vec3i), b: int, t: int):
    """Triangle t's three projected vertices (``raster.project_kernel``'s rows: pixel x, y, z/w, w) and
    whether all of them are in front of the eye (w > 0)."""
    idx = tri[t]
    sa = scr[b, idx[0]]
    sb = scr[b, idx[1]]
    sc = scr[b, idx[2]]
    zero = wp.float64(0.0)
    return sa, sb, sc, sa[3] > zero and sb[3] > zero and sc[3] > zero


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
def add4(gpos4: wp.array2d(dtype=Any), b: int, i: int, gxyw: wp.vec3d, gz: wp.float64):
    """Adds ``(gx, gy, gz, gw)`` to row ``gpos4[b, i]`` (vec4 rows of the clip-space position gradient)."""
    wp.atomic_add(gpos4, b, i, gpos4.dtype(wp.vec4d(gxyw[0], gxyw[1], gz, gxyw[2])))


@wp.func
def bary_grad_pixel(
    pos4: wp.array2d(dtype=Any),
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
    gpos4: wp.array2d(dtype=Any),
):
    """Adds d loss / d pos of pixel (r, c) covered by triangle t, given d loss / d (u, v, z/w), into the vec4
    rows ``gpos4 [B,V]`` (``pos4 [B,V]`` vec4 rows too). With ``V_i = (x_i, y_i, w_i)``, ``p = (ndc_x, ndc_y,
    1)``: ``e_0 = (V_1 x V_2) . p`` (cyclic), ``u = e_0 / sum(e)``, ``v = e_1 / sum(e)`` and ``z/w = sum(e_i
    z_i) / det`` with ``det = V_0 . (V_1 x V_2)`` (``builtin.barycentric_backward``'s maths). ``gz = 0`` skips
    the z/w terms (u and v do not depend on z)."""
    idx = tri[t]
    qa = wp.vec4d(pos4[b, idx[0]])
    qb = wp.vec4d(pos4[b, idx[1]])
    qc = wp.vec4d(pos4[b, idx[2]])
    va = wp.vec3d(qa[0], qa[1], qa[3])
    vb = wp.vec3d(qb[0], qb[1], qb[3])
    vc = wp.vec3d(qc[0], qc[1], qc[3])
    p = pixel_ndc(r, c, height, width)
    n0 = wp.cross(vb, vc)
    n1 = wp.cross(vc, va)
    n2 = wp.cross(va, vb)
    e0 = wp.dot(n0, p)
    e1 = wp.dot(n1, p)
    e2 = wp.dot(n2, p)
    inv_s = wp.float64(1.0) / (e0 + e1 + e2)
    dot = (g0 * e0 + g1 * e1) * inv_s
    ge0 = (g0 - dot) * inv_s
    ge1 = (g1 - dot) * inv_s
    ge2 = -dot * inv_s
    gzd = wp.float64(0.0)
    gdet = wp.float64(0.0)
    if gz != wp.float64(0.0):
        inv_det = wp.float64(1.0) / wp.dot(va, n0)
        gzd = gz * inv_det
        ge0 += gzd * qa[2]
        ge1 += gzd * qb[2]
        ge2 += gzd * qc[2]
        zw = (e0 * qa[2] + e1 * qb[2] + e2 * qc[2]) * inv_det
        gdet = -gzd * zw
    add4(gpos4, b, idx[0], ge1 * wp.cross(p, vc) + ge2 * wp.cross(vb, p) + gdet * n0, gzd * e0)
    add4(gpos4, b, idx[1], ge0 * wp.cross(vc, p) + ge2 * wp.cross(p, va) + gdet * n1, gzd * e1)
    add4(gpos4, b, idx[2], ge0 * wp.cross(p, vb) + ge1 * wp.cross(va, p) + gdet * n2, gzd * e2)

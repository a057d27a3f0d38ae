"""Warp kernels of ``facezoo.render.normals``: area-weighted vertex normals ``m_v = sum over the triangles
of v of (v1 - v0) x (v2 - v0)``, normalised, and the backward of both passes."""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import overload

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


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


overload(normalize_rows_kernel, m=(3, 0), out=(3, 0))
overload(normalize_rows_bwd_kernel, m=(3, 0), grad=(3, 0), out=(3, 0))

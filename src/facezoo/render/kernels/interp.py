"""Warp kernels of ``facezoo.render.interpolate``: interpolation on a compact list of covered pixels and its
backward (launched by :mod:`facezoo.render.interpolate`)."""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import offset3, overload, structs

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


# a launch's covered pixels, shared by the forward and the backward: ``pix`` (flat indices into ``rast
# [B*H*W,4]``), the triangles, ``off`` added to their vertex indices (the batch item's first row when the
# attributes are per item) and ``full`` (output rows are pix's indices, else packed rows p)
PIXELS = structs(
    "Pixels", rast=(2, 0), pix=wp.array(dtype=wp.int64), tri=wp.array(dtype=wp.vec3i), off=int, full=int
)


@wp.func
def _pixel(px: Any, p: int):
    """Covered pixel p of the list: its flat index q into rast, its output row (q when ``full``, else p), its
    (u, v) and the attribute rows of its triangle's vertices (shifted by ``off``)."""
    q = int(px.pix[p])
    o = p
    if px.full != 0:
        o = q
    return q, o, px.rast[q, 0], px.rast[q, 1], offset3(px.tri[int(px.rast[q, 3]) - 1], px.off)


@wp.kernel
def interp_fwd_kernel(attr: wp.array2d(dtype=Any), px: Any, out: wp.array2d(dtype=Any)):
    """Covered pixel p = ``pix[p]``: ``a2 + u (a0 - a2) + v (a1 - a2)`` into row ``pix[p]`` of out (``full``
    != 0) or row p (packed). A launch covers pixels of one batch item."""
    q, o, u, v, rows = _pixel(px, wp.tid())
    for k in range(attr.shape[1]):
        a2 = attr[rows[2], k]
        out[o, k] = a2 + u * (attr[rows[0], k] - a2) + v * (attr[rows[1], k] - a2)


@wp.kernel
def interp_bwd_kernel(
    attr: wp.array2d(dtype=Any),
    px: Any,
    grad: wp.array2d(dtype=Any),
    want_attr: int,
    grad_attr: wp.array2d(dtype=Any),
    grad_rast: wp.array2d(dtype=Any),
):
    """grad_attr[a_k] += w_k g (w = u, v, 1 - u - v); d/du = g . (a0 - a2), d/dv = g . (a1 - a2) written
    into ``grad_rast`` (zero elsewhere)."""
    q, o, u, v, rows = _pixel(px, wp.tid())
    w = grad_rast.dtype(1.0) - u - v
    gu = grad_rast.dtype(0.0)
    gv = grad_rast.dtype(0.0)
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


overload(interp_fwd_kernel, attr=(2, 0), px=PIXELS, out=(2, 0))
overload(interp_bwd_kernel, attr=(2, 0), px=PIXELS, grad=(2, 0), grad_attr=(2, 0), grad_rast=(2, 0))

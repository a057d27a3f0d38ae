"""Warp kernels of the MeshRenderer's fused per-pixel stage (``facezoo.render.shade_pixels``): at a covered
pixel interpolate albedo, normal and depth, renormalise the normal, SH-shade, write colour + coverage +
depth; and the matching one-pass backward."""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import bary_grad_pixel, offset3, overload, structs

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


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
def _gamma(gamma: wp.array3d(dtype=Any), b: int, lit: int):
    """Item b's folded SH coefficients in float64 (zeros when unlit), loaded once per thread: the rows
    ``[9]`` of the three colour channels."""
    g = mat39d()
    if lit != 0:
        for k in range(3):
            for j in range(9):
                g[k, j] = wp.float64(gamma[b, k, j])
    return g[0], g[1], g[2]


@wp.func
def _rows(mesh: Any, b: int, i: int):
    """Thread i's flat pixel rows ``[q0, q1)`` of batch item b (``span`` pixels, clipped to the item), and
    the item's first row ``b * H * W``."""
    hw = mesh.height * mesh.width
    q0 = b * hw + i * mesh.span
    return q0, wp.min(q0 + mesh.span, (b + 1) * hw), b * hw


@wp.func
def _lerp3(a0: wp.float64, a1: wp.float64, a2: wp.float64, u: wp.float64, v: wp.float64) -> wp.float64:
    # the same expression as interp_fwd_kernel: a2 + u (a0 - a2) + v (a1 - a2)
    return a2 + u * (a0 - a2) + v * (a1 - a2)


@wp.func
def _lerp_rows(rows: wp.array(dtype=Any), r: wp.vec3i, u: wp.float64, v: wp.float64) -> wp.vec3d:
    """``a2 + u (a0 - a2) + v (a1 - a2)`` of three vec3 rows, in float64."""
    a2 = wp.vec3d(rows[r[2]])
    return a2 + u * (wp.vec3d(rows[r[0]]) - a2) + v * (wp.vec3d(rows[r[1]]) - a2)


# the inputs shared by the forward and the backward: the pixels (``rast [B*H*W,4]``, ``height``, ``width``,
# ``span`` pixels a thread) and the mesh attributes (see ``shade_fwd_kernel``)
SHADE_MESH = structs(
    "ShadeMesh",
    rast=(2, 0),
    tri=wp.array(dtype=wp.vec3i),
    albedo=(2, 0),
    alb_off=int,
    albedo3=(1, 3),
    normals3=(1, 3),
    vdepth=(1, 0),
    gamma=(3, 0),
    lit=int,
    n_vert=int,
    height=int,
    width=int,
    span=int,
)


@wp.kernel
def shade_fwd_kernel(
    mesh: Any,
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
    q0, q1, _ = _rows(mesh, b, wp.tid())
    gam0, gam1, gam2 = _gamma(mesh.gamma, b, mesh.lit)
    n_ch = mesh.albedo.shape[1]
    for q in range(q0, q1):
        tf = mesh.rast[q, 3]
        if tf <= mesh.rast.dtype(0.0):
            qb = 0  # the background: one row for all pixels, or one per pixel
            if bg.shape[0] > 1:
                qb = q
            for k in range(n_ch):
                out[q, k] = bg[qb, k]
            out[q, n_ch] = out.dtype(0.0)
            depth[q] = depth.dtype(0.0)
            continue
        u = wp.float64(mesh.rast[q, 0])
        v = wp.float64(mesh.rast[q, 1])
        idx = mesh.tri[int(tf) - 1]
        ra = offset3(idx, b * mesh.alb_off)
        rn = offset3(idx, b * mesh.n_vert)
        if mesh.lit != 0:  # C = 3: whole-vector maths (no per-element writes to local vectors)
            m = _lerp_rows(mesh.normals3, rn, u, v)
            y = _sh9(m / wp.max(wp.length(m), wp.float64(1e-12)))
            a = _lerp_rows(mesh.albedo3, ra, u, v)
            out[q, 0] = out.dtype(a[0] * wp.dot(gam0, y))
            out[q, 1] = out.dtype(a[1] * wp.dot(gam1, y))
            out[q, 2] = out.dtype(a[2] * wp.dot(gam2, y))
        else:
            for k in range(n_ch):
                a0 = wp.float64(mesh.albedo[ra[0], k])
                a1 = wp.float64(mesh.albedo[ra[1], k])
                out[q, k] = out.dtype(_lerp3(a0, a1, wp.float64(mesh.albedo[ra[2], k]), u, v))
        out[q, n_ch] = out.dtype(1.0)
        vd = mesh.vdepth
        d = _lerp3(wp.float64(vd[rn[0]]), wp.float64(vd[rn[1]]), wp.float64(vd[rn[2]]), u, v)
        depth[q] = depth.dtype(d)


@wp.kernel
def shade_bwd_kernel(
    mesh: Any,
    b: int,
    gout: wp.array2d(dtype=Any),
    gdepth: wp.array(dtype=Any),
    want_depth: int,
    want_albedo: int,
    want_pos: int,
    pos4: wp.array2d(dtype=Any),
    g_albedo: wp.array2d(dtype=Any),
    g_albedo3: wp.array(dtype=Any),
    g_normals3: wp.array(dtype=Any),
    g_vdepth: wp.array(dtype=Any),
    g_gamma: wp.array3d(dtype=wp.float64),
    gpos4: wp.array2d(dtype=Any),
):
    """Backward of ``shade_fwd_kernel`` over the same pixels: adds into the per-vertex gradients of albedo,
    normals and depth (barycentric weights), into ``g_gamma [B,3,9]`` (summed over the span first) and,
    through d(out)/d(u, v), into the clip-space positions (``bary_grad_pixel``). The coverage channel is
    constant on covered pixels: its gradient goes nowhere here (antialias carries silhouette gradients)."""
    q0, q1, first = _rows(mesh, b, wp.tid())
    gam0, gam1, gam2 = _gamma(mesh.gamma, b, mesh.lit)
    n_ch = mesh.albedo.shape[1]
    acc = mat39d()
    eps = wp.float64(1e-12)
    for q in range(q0, q1):
        tf = mesh.rast[q, 3]
        if tf <= mesh.rast.dtype(0.0):
            continue
        u = wp.float64(mesh.rast[q, 0])
        v = wp.float64(mesh.rast[q, 1])
        w = wp.float64(1.0) - u - v
        t = int(tf) - 1
        idx = mesh.tri[t]
        ra = offset3(idx, b * mesh.alb_off)
        rn = offset3(idx, b * mesh.n_vert)
        gu = wp.float64(0.0)
        gv = wp.float64(0.0)
        if mesh.lit != 0:  # C = 3, whole-vector maths
            m = _lerp_rows(mesh.normals3, rn, u, v)
            len_m = wp.length(m)
            nrm = wp.max(len_m, eps)
            n = m / nrm
            y = _sh9(n)
            a0 = wp.vec3d(mesh.albedo3[ra[0]])
            a1 = wp.vec3d(mesh.albedo3[ra[1]])
            a2 = wp.vec3d(mesh.albedo3[ra[2]])
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
            n2 = wp.vec3d(mesh.normals3[rn[2]])
            gu += wp.dot(gm, wp.vec3d(mesh.normals3[rn[0]]) - n2)
            gv += wp.dot(gm, wp.vec3d(mesh.normals3[rn[1]]) - n2)
        else:
            for k in range(n_ch):
                a0s = wp.float64(mesh.albedo[ra[0], k])
                a1s = wp.float64(mesh.albedo[ra[1], k])
                a2s = wp.float64(mesh.albedo[ra[2], k])
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
            d2 = wp.float64(mesh.vdepth[rn[2]])
            gu += gd * (wp.float64(mesh.vdepth[rn[0]]) - d2)
            gv += gd * (wp.float64(mesh.vdepth[rn[1]]) - d2)
        if want_pos != 0:
            rc = q - first
            r = rc // mesh.width
            c = rc - r * mesh.width
            bary_grad_pixel(
                pos4, mesh.tri, b, r, c, t, gu, gv, wp.float64(0.0), mesh.height, mesh.width, gpos4
            )
    if mesh.lit != 0:
        for k in range(3):
            for j in range(9):
                wp.atomic_add(g_gamma, b, k, j, acc[k, j])


overload(shade_fwd_kernel, mesh=SHADE_MESH, bg=(2, 0), out=(2, 0), depth=(1, 0))
overload(
    shade_bwd_kernel,
    mesh=SHADE_MESH,
    gout=(2, 0),
    gdepth=(1, 0),
    pos4=(2, 4),
    g_albedo=(2, 0),
    g_albedo3=(1, 3),
    g_normals3=(1, 3),
    g_vdepth=(1, 0),
    gpos4=(2, 4),
)

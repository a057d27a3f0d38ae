"""MeshRenderer's per-pixel stage fused into one Warp pass: at every covered pixel, interpolate the albedo,
the vertex normal and the depth, renormalise the normal, SH-shade and write colour + coverage over the
background; the backward is one pass too, ending in the clip-space position gradient of the barycentrics.

It computes exactly what the unfused path does (``interpolate`` -> ``F.normalize`` -> ``sh_shade`` ->
composite; tested against it) without the intermediate ``[P,C]`` tensors, pixel lists or per-item matrix
products. Arithmetic per pixel is float64 whatever the input dtype.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from facezoo.render._runtime import (
    BATCH,
    item_chunks,
    launch_items,
    loaded_kernels,
    per_thread_buffers,
    pixel_spans,
    sum_buffers,
    use_warp,
)
from facezoo.render.shading import SH_A, SH_C, sh_coefficients

# the SH constants of sh_basis, folded into the coefficients so that the kernel's basis is
# (1, -y, z, -x, xy, -yz, 3z^2 - 1, -xz, x^2 - y^2)
_K = (
    SH_A[0] * SH_C[0],
    *(SH_A[1] * SH_C[1],) * 3,
    *(SH_A[2] * SH_C[2],) * 2,
    0.5 * SH_A[2] * SH_C[2] / math.sqrt(3.0),
    SH_A[2] * SH_C[2],
    0.5 * SH_A[2] * SH_C[2],
)


def fused_available(dtype: torch.dtype) -> bool:
    """Whether :func:`shade_pixels` can run for this dtype (the Warp kernels are on, float32/float64)."""
    return use_warp(torch.empty(0, dtype=dtype))


def _mesh_args(k, rast, tri, albedo, alb_off, normals, vdepth, gamma) -> dict:
    """The kernel arguments shared by the forward and the backward: the mesh and the pixels as one
    ``kernels.shade.SHADE_MESH`` struct, and the batch item (all arrays of one float dtype, contiguous;
    ``normals``/``gamma`` None when unlit)."""
    wp = k.wp
    batch, height, width = rast.shape[:3]
    lit = normals is not None
    if not lit:
        normals = vdepth.new_zeros(1, 3)
        gamma = vdepth.new_zeros(1, 3, 9)
    f64 = vdepth.dtype == torch.float64
    vec = wp.vec3d if f64 else wp.vec3f
    mesh = k.shade.SHADE_MESH[wp.float64 if f64 else wp.float32]()
    mesh.rast = wp.from_torch(rast.reshape(-1, 4))
    mesh.tri = wp.from_torch(tri, dtype=wp.vec3i)
    mesh.albedo = wp.from_torch(albedo)
    mesh.alb_off = alb_off
    mesh.albedo3 = wp.from_torch(albedo if albedo.shape[1] == 3 else normals, dtype=vec)  # vec3 rows when lit
    mesh.normals3 = wp.from_torch(normals, dtype=vec)
    mesh.vdepth = wp.from_torch(vdepth)
    mesh.gamma = wp.from_torch(gamma)
    mesh.lit = int(lit)
    mesh.n_vert = vdepth.shape[0] // batch
    mesh.height = height
    mesh.width = width
    mesh.span = pixel_spans(rast.device, height, width)[0]
    return dict(mesh=mesh, b=BATCH)


def _shade_fwd(rast, tri, albedo, alb_off, normals, vdepth, gamma, bg, out, depth) -> None:
    """Runs ``kernels.shade.shade_fwd_kernel`` over ``rast [B,H,W,4]`` (background ``bg [1,C]`` or
    ``[B*H*W,C]``), writing ``out [B*H*W,C+1]`` and ``depth [B*H*W]``. CPU threads own whole items."""
    k = loaded_kernels()
    wp = k.wp
    batch, height, width = rast.shape[:3]
    args = _mesh_args(k, rast, tri, albedo, alb_off, normals, vdepth, gamma)
    args.update(bg=wp.from_torch(bg), out=wp.from_torch(out), depth=wp.from_torch(depth))
    n_span = pixel_spans(rast.device, height, width)[1]
    launch_items([(k.shade.shade_fwd_kernel, n_span, args)], batch, batch * height * width, rast.device)


def _shade_bwd(pos, rast, tri, albedo, alb_off, normals, vdepth, gamma, gout, gdepth, want_albedo, want_pos):
    """Gradients ``(g_albedo, g_normals, g_vdepth, g_gamma, g_pos)`` of :func:`_shade_fwd` given those of
    ``out`` and ``depth`` (``gdepth`` None: the depth map is unused). None for unlit normals/gamma; g_albedo
    None unless wanted; g_gamma float64, g_pos in pos's dtype. Shared albedo (``alb_off`` 0) gets one
    gradient buffer per CPU thread, summed afterwards."""
    k = loaded_kernels()
    wp = k.wp
    batch, height, width = rast.shape[:3]
    lit = normals is not None
    args = _mesh_args(k, rast, tri, albedo, alb_off, normals, vdepth, gamma)
    vec = wp.vec3d if vdepth.dtype == torch.float64 else wp.vec3f
    vec4 = wp.vec4d if pos.dtype == torch.float64 else wp.vec4f
    g_normals = torch.zeros_like(normals) if lit else vdepth.new_zeros(1, 3)
    g_vdepth = torch.zeros_like(vdepth)
    g_gamma = torch.zeros((batch, 3, 9) if lit else (1, 3, 9), dtype=torch.float64, device=vdepth.device)
    # position gradients accumulate in pos's dtype (float32 like nvdiffrast's; each vertex sums a few dozen
    # pixels' terms, each computed in float64)
    gpos = torch.zeros(pos.shape if want_pos else (1, 1, 4), dtype=pos.dtype, device=pos.device)
    want_depth = gdepth is not None
    args.update(
        pos4=wp.from_torch(pos, dtype=vec4),
        gout=wp.from_torch(gout),
        gdepth=wp.from_torch(gdepth if want_depth else vdepth.new_zeros(1)),
        want_depth=int(want_depth),
        want_albedo=int(want_albedo),
        want_pos=int(want_pos),
        g_normals3=wp.from_torch(g_normals, dtype=vec),
        g_vdepth=wp.from_torch(g_vdepth),
        g_gamma=wp.from_torch(g_gamma),
        gpos4=wp.from_torch(gpos, dtype=vec4),
    )
    chunks = item_chunks(batch, rast.device)
    buffers = per_thread_buffers(albedo, len(chunks), shared=alb_off == 0, want=want_albedo)
    n_span = pixel_spans(rast.device, height, width)[1]

    def launches(job: int) -> list:  # each CPU thread adds into its own albedo buffer
        buf = buffers[job]
        g_albedo3 = wp.from_torch(buf if buf.shape[1] == 3 else g_normals, dtype=vec)
        named = dict(args, g_albedo=wp.from_torch(buf), g_albedo3=g_albedo3)
        return [(k.shade.shade_bwd_kernel, n_span, named)]

    launch_items(launches, batch, batch * height * width, rast.device)
    g_albedo = sum_buffers(buffers) if want_albedo else None
    return g_albedo, (g_normals if lit else None), g_vdepth, (g_gamma if lit else None), gpos


class _ShadePixels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, albedo, normals, vdepth, gamma, base, rast, tri32, alb_off):
        n_pix, n_ch = base.shape
        out = base.new_empty(n_pix, n_ch + 1)
        depth = base.new_empty(n_pix)
        # a constant background (an expanded row) goes to the kernel as that one row
        bg = base.detach()
        bg = bg[:1].contiguous() if bg.stride(0) == 0 else bg.contiguous()
        albedo = albedo.detach().contiguous()
        normals = None if normals is None else normals.detach().contiguous()
        vdepth = vdepth.detach().contiguous()
        gamma = None if gamma is None else gamma.detach().contiguous()
        _shade_fwd(rast, tri32, albedo, alb_off, normals, vdepth, gamma, bg, out, depth)
        ctx.save_for_backward(pos, albedo, normals, vdepth, gamma, rast, tri32)
        ctx.alb_off = alb_off
        ctx.set_materialize_grads(False)  # an unused depth map costs the backward nothing
        return out, depth

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, gdepth):
        pos, albedo, normals, vdepth, gamma, rast, tri32 = ctx.saved_tensors
        need = ctx.needs_input_grad
        dtype = albedo.dtype
        n_ch = albedo.shape[1]
        n_pix = rast.shape[:3].numel()
        gout = albedo.new_zeros(n_pix, n_ch + 1) if gout is None else gout
        g_alb, g_n, g_d, g_g, g_pos = _shade_bwd(
            pos.detach().contiguous(),
            rast,
            tri32,
            albedo,
            ctx.alb_off,
            normals,
            vdepth,
            gamma,
            gout.to(dtype).contiguous(),
            None if gdepth is None else gdepth.to(dtype).contiguous(),
            need[1],
            need[0],
        )
        g_base = None
        if need[5]:  # the background shows where nothing is covered
            g_base = gout[:, :n_ch] * (rast.reshape(-1, 4)[:, 3:] <= 0)
        return (
            g_pos.to(pos.dtype) if need[0] else None,
            g_alb,
            g_n,
            g_d,
            None if g_g is None else g_g.to(dtype),
            g_base,
            None,
            None,
            None,
        )


def shade_pixels(
    pos: torch.Tensor,
    rast: torch.Tensor,
    tri32: torch.Tensor,
    albedo: torch.Tensor,
    normals: torch.Tensor | None,
    vdepth: torch.Tensor,
    lighting: torch.Tensor | None,
    base: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shade the covered pixels of ``rast`` and composite them over a background.

    Args:
        pos: ``[B,V,4]`` clip-space positions that made ``rast`` (position gradients flow through the
            perspective-correct barycentrics; ``rast`` itself carries none).
        rast: ``[B,H,W,4]`` in pos's dtype; tri32: ``[T,3]`` int32 contiguous.
        albedo: ``[B,V,C]`` or ``[1,V,C]`` per-vertex albedo (C = 3 when lit).
        normals: ``[B,V,3]`` unit vertex normals, or None for unlit albedo.
        vdepth: ``[B,V,1]`` per-vertex depth (interpolated into the depth map).
        lighting: SH coefficients as in :func:`~facezoo.render.shading.sh_shade` (``[B,9]``, ``[B,27]``
            or ``[B,3,9]``), None when unlit.
        base: ``[B*H*W,C]`` background (may be an expanded view).

    Returns:
        ``([B*H*W,C+1], [B*H*W])``: colour and coverage (1 on covered pixels, 0 elsewhere), and depth (0 on
        the background). Differentiable in pos, albedo, normals, vdepth, lighting and base; no double
        backward.
    """
    batch, n_vert = pos.shape[:2]
    dtype = pos.dtype
    alb_off = n_vert if albedo.shape[0] == batch and batch > 1 else 0
    gamma = None
    if lighting is not None:
        gamma = sh_coefficients(lighting, batch, "lighting").to(dtype) * torch.tensor(
            _K, dtype=dtype, device=pos.device
        )
        normals = normals.reshape(-1, 3)
    return _ShadePixels.apply(
        pos,
        albedo.to(dtype).reshape(-1, albedo.shape[-1]),
        normals,
        vdepth.to(dtype).reshape(-1),
        gamma,
        base.to(dtype),
        rast.detach().to(dtype).contiguous(),
        tri32,
        alb_off,
    )

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

from facezoo.render.shading import SH_A, SH_C

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
    """Whether :func:`shade_pixels` can run for this dtype (Warp importable, float32/float64)."""
    from facezoo.render.backends.builtin import warp_available

    return USE_FUSED and dtype in (torch.float32, torch.float64) and warp_available()


class _ShadePixels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, albedo, normals, vdepth, gamma, base, rast, tri32, alb_off):
        from facezoo.render.backends.builtin import shade_fwd_warp

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
        shade_fwd_warp(rast, tri32, albedo, alb_off, normals, vdepth, gamma, bg, out, depth)
        ctx.save_for_backward(pos, albedo, normals, vdepth, gamma, rast, tri32)
        ctx.alb_off = alb_off
        ctx.set_materialize_grads(False)  # an unused depth map costs the backward nothing
        return out, depth

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, gdepth):
        from facezoo.render.backends.builtin import shade_bwd_warp

        pos, albedo, normals, vdepth, gamma, rast, tri32 = ctx.saved_tensors
        need = ctx.needs_input_grad
        dtype = albedo.dtype
        n_ch = albedo.shape[1]
        n_pix = rast.shape[:3].numel()
        gout = albedo.new_zeros(n_pix, n_ch + 1) if gout is None else gout
        g_alb, g_n, g_d, g_g, g_pos = shade_bwd_warp(
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
    from facezoo.render.shading import _coeffs

    batch, n_vert = pos.shape[:2]
    dtype = pos.dtype
    alb_off = n_vert if albedo.shape[0] == batch and batch > 1 else 0
    gamma = None
    if lighting is not None:
        gamma = _coeffs(lighting, batch).to(dtype) * torch.tensor(_K, dtype=dtype, device=pos.device)
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


#: set to False to use the unfused path (tests compare the two)
USE_FUSED = True

"""The ``"builtin"`` backend: exact rasterization with float64 arithmetic (Warp kernels, or pure PyTorch
without Warp) and the analytic derivative of the perspective-correct barycentrics and z/w w.r.t. the
clip-space positions."""

from __future__ import annotations

import os

import torch

from facezoo.render._cache import tri_int32
from facezoo.render.backends import Backend
from facezoo.render.backends.builtin import (
    barycentric_grad_warp,
    rasterize_torch,
    rasterize_warp,
    warp_available,
)

#: which implementation the builtin backend uses: "warp" (default when importable) or "torch"
IMPLEMENTATION = os.environ.get("FACEZOO_RASTER_IMPL", "warp")


def _forward(pos: torch.Tensor, tri32: torch.Tensor, height: int, width: int, cull: bool, impl: str):
    """rast in pos's dtype; the arithmetic is float64 in both implementations."""
    if impl == "warp" and warp_available():
        return rasterize_warp(pos, tri32, height, width, cull)
    return rasterize_torch(pos.to(torch.float64), tri32, height, width, cull).to(pos.dtype)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cross(a, b, dim=-1)


def barycentric_backward(pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, grad: torch.Tensor):
    """d loss / d pos_clip from d loss / d rast (channels u, v, z/w), computed analytically.

    With ``V_i = (x_i, y_i, w_i)``, pixel ``p = (ndc_x, ndc_y, 1)`` and ``e_0 = V_1 . (V_2 x p)`` (cyclic),
    ``b_i = e_i / sum(e)`` and ``z/w = sum(e_i z_i) / det`` where ``det = V_0 . (V_1 x V_2)``.
    """
    batch, n_vert, _ = pos.shape
    height, width = rast.shape[1:3]
    tid = rast[..., 3].long() - 1
    sel = (tid >= 0).nonzero(as_tuple=True)
    if sel[0].numel() == 0:
        return torch.zeros_like(pos)
    b, r, c = sel
    t = tid[sel]
    idx = tri.long()[t]  # [P,3]
    v = pos.double()[b[:, None], idx]  # [P,3,4]
    va, vb, vc = (v[:, i][:, [0, 1, 3]] for i in range(3))
    z = v[..., 2]
    p = torch.stack(
        [
            (2 * c + 1).double() / width - 1.0,
            1.0 - (2 * r + 1).double() / height,
            torch.ones_like(c, dtype=torch.float64),
        ],
        -1,
    )
    n0, n1, n2 = _cross(vb, vc), _cross(vc, va), _cross(va, vb)
    e = torch.stack([(n0 * p).sum(-1), (n1 * p).sum(-1), (n2 * p).sum(-1)], -1)
    s = e.sum(-1, keepdim=True)
    det = (va * n0).sum(-1, keepdim=True)
    bary = e / s
    zw = (e * z).sum(-1, keepdim=True) / det
    g = grad[sel].double()
    gb = torch.stack([g[:, 0], g[:, 1], torch.zeros_like(g[:, 0])], -1)
    gz = g[:, 2:3]
    ge = (gb - (gb * bary).sum(-1, keepdim=True)) / s + gz * z / det  # dL/de_i
    gdet = -gz * zw / det
    ga = ge[:, 1:2] * _cross(p, vc) + ge[:, 2:3] * _cross(vb, p) + gdet * n0
    gbv = ge[:, 0:1] * _cross(vc, p) + ge[:, 2:3] * _cross(p, va) + gdet * n1
    gc = ge[:, 0:1] * _cross(p, vb) + ge[:, 1:2] * _cross(va, p) + gdet * n2
    gxyw = torch.stack([ga, gbv, gc], 1)  # [P,3,3]
    gpos = torch.zeros(batch * n_vert, 4, dtype=torch.float64, device=pos.device)
    gv = torch.stack([gxyw[..., 0], gxyw[..., 1], gz * e / det, gxyw[..., 2]], -1)  # [P,3,4]
    gpos.index_add_(0, (b[:, None] * n_vert + idx).reshape(-1), gv.reshape(-1, 4))
    return gpos.view(batch, n_vert, 4).to(pos.dtype)


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pos, tri, height, width, cull, impl):
        tri32 = tri_int32(tri)
        rast = _forward(pos.detach().contiguous(), tri32, height, width, cull, impl)
        ctx.save_for_backward(pos, tri32, rast)
        ctx.impl = impl
        return rast

    @staticmethod
    def backward(ctx, grad):
        pos, tri, rast = ctx.saved_tensors
        gpos = None
        if ctx.needs_input_grad[0]:
            if ctx.impl == "warp" and warp_available():
                gpos = barycentric_grad_warp(pos, tri, rast, grad).to(pos.dtype)
            else:
                gpos = barycentric_backward(pos, tri, rast, grad)
        return gpos, None, None, None, None, None


def rasterize_builtin(
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    resolution: tuple[int, int],
    cull_backface: bool,
    impl: str | None = None,
) -> torch.Tensor:
    """Builtin rasterization with gradients to ``pos_clip`` through (u, v, z/w)."""
    return _Rasterize.apply(
        pos_clip, tri, resolution[0], resolution[1], bool(cull_backface), impl or IMPLEMENTATION
    )


BACKEND = Backend(name="builtin", available=lambda device: True, rasterize=rasterize_builtin)

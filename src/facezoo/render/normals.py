"""Area-weighted vertex normals for the renderer, with an analytic backward (Warp kernels where Warp
imports, else :func:`facezoo.geometry.mesh.vertex_normals`, which they match)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from facezoo.render._cache import tri_int32


class _FaceNormalSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, verts, tri32):
        from facezoo.render.backends.builtin import face_normal_sum_warp

        verts = verts.detach().contiguous()
        ctx.save_for_backward(verts, tri32)
        return face_normal_sum_warp(verts, tri32)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        from facezoo.render.backends.builtin import face_normal_sum_warp

        verts, tri32 = ctx.saved_tensors
        return face_normal_sum_warp(verts, tri32, grad), None


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unit area-weighted vertex normals ``[B,V,3]`` of ``vertices [B,V,3]`` (triangles ``[T,3]``
    counter-clockwise seen from outside); vertices in no triangle get a zero normal. Same result as
    :func:`facezoo.geometry.mesh.vertex_normals`; differentiable (no double backward on the Warp path).

    Example:
        >>> v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
        >>> vertex_normals(v, torch.tensor([[0, 1, 2]]))[0, 0]
        tensor([0., 0., 1.])
    """
    from facezoo.render.backends.builtin import warp_available

    if not (warp_available() and vertices.dtype in (torch.float32, torch.float64)):
        from facezoo.geometry.mesh import vertex_normals as reference

        return reference(vertices, triangles)
    summed = _FaceNormalSum.apply(vertices, tri_int32(triangles))
    return F.normalize(summed, dim=-1, eps=1e-12)

"""Area-weighted vertex normals for the renderer, with an analytic backward (Warp kernels where Warp
imports, else :func:`facezoo.geometry.mesh.vertex_normals`, which they match)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from facezoo.render._cache import tri_int32


class _VertexNormals(torch.autograd.Function):
    """Sum of the incident triangles' ``(v1 - v0) x (v2 - v0)`` per vertex, then ``F.normalize``'s rule, both
    in Warp (forward and backward: a pass over the triangles and one over the vertices per batch item)."""

    @staticmethod
    def forward(ctx, verts, tri32):
        from facezoo.render.backends.builtin import vertex_normals_warp

        verts = verts.detach().contiguous()
        unit, summed = vertex_normals_warp(verts, tri32)
        ctx.save_for_backward(verts, tri32, summed)
        return unit

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        from facezoo.render.backends.builtin import vertex_normals_bwd_warp

        verts, tri32, summed = ctx.saved_tensors
        return vertex_normals_bwd_warp(verts, tri32, summed, grad), None


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
    return _VertexNormals.apply(vertices, tri_int32(triangles))

"""The Warp fast path of :func:`facezoo.geometry.mesh.vertex_normals` (the one vertex-normal function; it
calls :func:`warp_vertex_normals` when the render kernels are Warp's): area-weighted vertex normals with an
analytic backward: a pass over the triangles and one over the vertices per batch item, both ways."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from facezoo.render._cache import tri_int32
from facezoo.render._runtime import BATCH, launch_items, loaded_kernels, use_warp


def _vec3(wp, x: torch.Tensor):
    return wp.vec3d if x.dtype == torch.float64 else wp.vec3f


def _setup(verts: torch.Tensor, tri: torch.Tensor):
    """What both directions' launches need: the kernels, warp, the vec3 type of ``verts`` and ``tri`` as
    vec3i rows."""
    k = loaded_kernels()
    return k, k.wp, _vec3(k.wp, verts), k.wp.from_torch(tri, dtype=k.wp.vec3i)


def _launch(items: list, verts: torch.Tensor, tri: torch.Tensor) -> None:
    """Runs the two passes of ``items`` per batch item (CPU threads own whole items: no atomic races)."""
    batch = verts.shape[0]
    launch_items(items, batch, batch * tri.shape[0], verts.device)


def _normals_fwd(verts: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(unit normals, summed normals)``, both ``[B,V,3]``: per vertex the sum m of its triangles'
    unnormalised normals and ``m / max(|m|, 1e-12)``. ``verts`` contiguous float32/float64, ``tri [T,3]``
    int32 contiguous."""
    k, wp, vec, wtri = _setup(verts, tri)
    summed = torch.zeros_like(verts)
    unit = torch.empty_like(verts)
    _launch(
        [
            (
                k.normals.face_normal_sum_kernel,
                tri.shape[0],
                dict(
                    verts=wp.from_torch(verts, dtype=vec),
                    tri=wtri,
                    b=BATCH,
                    out=wp.from_torch(summed, dtype=vec),
                ),
            ),
            (
                k.normals.normalize_rows_kernel,
                verts.shape[1],
                dict(m=wp.from_torch(summed), b=BATCH, out=wp.from_torch(unit)),
            ),
        ],
        verts,
        tri,
    )
    return unit, summed


def _normals_bwd(
    verts: torch.Tensor, tri: torch.Tensor, summed: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Gradient w.r.t. ``verts [B,V,3]`` of :func:`_normals_fwd`'s unit normals given theirs."""
    k, wp, vec, wtri = _setup(verts, tri)
    g_sum = torch.empty_like(verts)
    out = torch.zeros_like(verts)
    grad = grad.to(verts.dtype).contiguous()
    _launch(
        [
            (
                k.normals.normalize_rows_bwd_kernel,
                verts.shape[1],
                dict(m=wp.from_torch(summed), grad=wp.from_torch(grad), b=BATCH, out=wp.from_torch(g_sum)),
            ),
            (
                k.normals.face_normal_sum_bwd_kernel,
                tri.shape[0],
                dict(
                    verts=wp.from_torch(verts, dtype=vec),
                    tri=wtri,
                    grad=wp.from_torch(g_sum, dtype=vec),
                    b=BATCH,
                    gverts=wp.from_torch(out, dtype=vec),
                ),
            ),
        ],
        verts,
        tri,
    )
    return out


class _VertexNormals(torch.autograd.Function):
    """Sum of the incident triangles' ``(v1 - v0) x (v2 - v0)`` per vertex, then ``F.normalize``'s rule."""

    @staticmethod
    def forward(ctx, verts, tri32):
        verts = verts.detach().contiguous()
        unit, summed = _normals_fwd(verts, tri32)
        ctx.save_for_backward(verts, tri32, summed)
        return unit

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        verts, tri32, summed = ctx.saved_tensors
        return _normals_bwd(verts, tri32, summed, grad), None


def warp_vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor | None:
    """Unit area-weighted vertex normals ``[B,V,3]`` from the Warp kernels (differentiable, no double
    backward), or None when the render kernels are PyTorch's or the dtype is not float32/float64. Inputs are
    checked by the caller, :func:`facezoo.geometry.mesh.vertex_normals`.

    Example:
        >>> v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
        >>> n = warp_vertex_normals(v, torch.tensor([[0, 1, 2]]))
        >>> n is None or n[0, 0].tolist() == [0.0, 0.0, 1.0]
        True
    """
    if not use_warp(vertices):
        return None
    return _VertexNormals.apply(vertices, tri_int32(triangles))

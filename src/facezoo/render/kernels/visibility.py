"""Warp kernel of the MeshRenderer's per-vertex visibility from the z-buffer
(``facezoo.render.visibility.vertex_visibility``'s rule)."""

from __future__ import annotations

from typing import Any

import warp as wp

from facezoo.render.kernels._common import FLOATS

wp.set_module_options({"enable_backward": False})  # every backward is written by hand


@wp.kernel
def visibility_kernel(
    pos: wp.array3d(dtype=Any),
    vdepth: wp.array2d(dtype=Any),
    depth: wp.array3d(dtype=Any),
    rast: wp.array4d(dtype=Any),
    tol: wp.array(dtype=Any),
    b: int,
    visible: wp.array2d(dtype=wp.bool),
):
    """Vertex i of item b is visible when it projects (w > 0) inside the image onto a covered pixel whose
    depth is not more than ``tol[b]`` nearer than the vertex. The same float ops, in pos's dtype, as
    ``vertex_visibility``'s PyTorch code, so the two agree exactly."""
    i = wp.tid()
    height = depth.shape[1]
    width = depth.shape[2]
    w = pos[b, i, 3]
    res = False
    if w > pos.dtype(0.0):
        col = int(wp.floor((pos[b, i, 0] / w + pos.dtype(1.0)) * pos.dtype(width) * pos.dtype(0.5)))
        row = int(wp.floor((pos.dtype(1.0) - pos[b, i, 1] / w) * pos.dtype(height) * pos.dtype(0.5)))
        if col >= 0 and col < width and row >= 0 and row < height:
            if rast[b, row, col, 3] > rast.dtype(0.0):
                res = vdepth[b, i] <= depth[b, row, col] + tol[b]
    visible[b, i] = res


for _s in FLOATS:
    wp.overload(
        visibility_kernel,
        {
            "pos": wp.array3d(dtype=_s),
            "vdepth": wp.array2d(dtype=_s),
            "depth": wp.array3d(dtype=_s),
            "rast": wp.array4d(dtype=_s),
            "tol": wp.array(dtype=_s),
        },
    )

"""``rasterize``: clip-space triangles -> per-pixel (u, v, z/w, triangle_id + 1), nvdiffrast's contract."""

from __future__ import annotations

import torch

from facezoo.render._checks import check_resolution, check_tensor, check_tri
from facezoo.render.backends import get_backend


def rasterize(
    pos_clip: torch.Tensor,
    tri: torch.Tensor,
    resolution: tuple[int, int],
    backend: str = "auto",
    cull_backface: bool = False,
) -> torch.Tensor:
    """Rasterize triangles given in OpenGL clip space.

    Args:
        pos_clip: ``[B,V,4]`` float32 or float64 clip-space positions (x, y, z, w); x/w right, y/w up, z/w in
            [-1, 1] with -1 nearest. Every backend takes both dtypes and returns rast in pos_clip's dtype:
            the builtin backend's arithmetic is float64 either way (float64 inputs serve gradchecks);
            nvdiffrast computes in float32 (pos_clip is cast at the backend boundary).
        tri: ``[T,3]`` int32 or int64 vertex indices (counter-clockwise in NDC = front facing).
        resolution: ``(H, W)`` in pixels.
        backend: ``"auto"`` (nvdiffrast on CUDA when importable, else builtin), ``"builtin"`` or
            ``"nvdiffrast"``.
        cull_backface: drop triangles that are clockwise in NDC (y up).

    Returns:
        rast ``[B,H,W,4]`` = (u, v, z/w, triangle_id + 1), zeros where no triangle covers the pixel. Images
        are top-row-first: row r samples ndc_y = 1 - (2r+1)/H, column c samples ndc_x = (2c+1)/W - 1. u
        weights the triangle's first vertex and v its second (perspective-correct). A pixel is covered where
        the interpolated z/w lies in [-1, 1] and w > 0 (homogeneous rasterization: triangles crossing the near
        plane need no clipping); the nearest z/w wins, ties go to the lower triangle index.

        As in nvdiffrast, the (u, v) channels (and here also z/w) carry gradients to ``pos_clip``; the id
        channel carries none. That is how :func:`interpolate` passes gradients to positions.

    Example:
        >>> pos = torch.tensor([[[-1.0, -1.0, 0.0, 1.0], [1.0, -1.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 1.0]]])
        >>> rast = rasterize(pos, torch.tensor([[0, 1, 2]], dtype=torch.int32), (4, 4))
        >>> rast.shape, int(rast[0, 3, 0, 3]), int(rast[0, 0, 3, 3])
        (torch.Size([1, 4, 4, 4]), 1, 0)
    """
    pos_clip = check_tensor(
        "pos_clip", pos_clip, ndim=3, last=4, dtypes=(torch.float32, torch.float64), want="[B,V,4]"
    )
    tri = check_tri(tri, pos_clip.shape[1], pos_clip.device)
    resolution = check_resolution(resolution)
    impl = get_backend(backend, pos_clip.device)
    if impl.name == "builtin":
        return impl.rasterize(pos_clip, tri, resolution, bool(cull_backface))
    # other backends compute in float32; the result takes pos_clip's dtype like the builtin one's
    return impl.rasterize(pos_clip.float(), tri, resolution, bool(cull_backface)).to(pos_clip.dtype)

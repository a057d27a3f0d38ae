"""Per-vertex visibility from a rendered depth map (MeshRenderer's ``visible``): PyTorch, and the same rule in
one Warp pass (``kernels.visibility``) when the Warp kernels are on."""

from __future__ import annotations

import torch

from facezoo.render._runtime import BATCH, launch_items, loaded_kernels, use_warp


def vertex_visibility(
    pos_clip: torch.Tensor,
    vertex_depth: torch.Tensor,
    depth: torch.Tensor,
    covered: torch.Tensor,
    tol: torch.Tensor,
) -> torch.Tensor:
    """``[B,V]`` bool: a vertex is visible if it projects inside the image onto a covered pixel whose depth is
    not more than ``tol [B]`` nearer than the vertex (``depth`` ``[B,H,W]`` and ``vertex_depth [B,V]`` both
    grow away from the camera). Vertices on a silhouette whose pixel centre is not covered count as hidden.

    Example:
        >>> pos = torch.tensor([[[-0.5, -0.5, 0.0, 1.0], [0.5, 0.5, 0.0, 1.0]]])  # bottom-left, top-right
        >>> covered = torch.tensor([[[False, False], [True, False]]])  # only the bottom-left pixel
        >>> vertex_visibility(pos, torch.zeros(1, 2), torch.zeros(1, 2, 2), covered, torch.zeros(1))
        tensor([[ True, False]])
    """
    batch, height, width = depth.shape
    w = pos_clip[..., 3]
    safe = torch.where(w > 0, w, torch.ones_like(w))
    col = torch.floor((pos_clip[..., 0] / safe + 1) * (width * 0.5)).long()
    row = torch.floor((1 - pos_clip[..., 1] / safe) * (height * 0.5)).long()
    inside = (w > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    b = torch.arange(batch, device=depth.device)[:, None].expand_as(col)
    rr, cc = row.clamp(0, height - 1), col.clamp(0, width - 1)
    return inside & covered[b, rr, cc] & (vertex_depth <= depth[b, rr, cc] + tol[:, None])


def _visibility_warp(
    pos: torch.Tensor, vdepth: torch.Tensor, depth: torch.Tensor, rast: torch.Tensor, tol: torch.Tensor
) -> torch.Tensor:
    """:func:`vertex_visibility`'s rule in one Warp pass (``pos [B,V,4]``, ``vdepth [B,V]``, ``depth
    [B,H,W]``, ``rast [B,H,W,4]``, ``tol [B]``, all of pos's dtype, contiguous)."""
    k = loaded_kernels()
    wp = k.wp
    batch, n_vert = pos.shape[:2]
    out = torch.empty((batch, n_vert), dtype=torch.bool, device=pos.device)
    args = {
        name: wp.from_torch(x)
        for name, x in dict(pos=pos, vdepth=vdepth, depth=depth, rast=rast, tol=tol).items()
    }
    args.update(b=BATCH, visible=wp.from_torch(out, dtype=wp.bool))
    launch_items([(k.visibility.visibility_kernel, n_vert, args)], batch, 0, pos.device)
    return out


def visible_vertices(
    pos: torch.Tensor, vdepth: torch.Tensor, depth: torch.Tensor, rast: torch.Tensor, tol: torch.Tensor
) -> torch.Tensor:
    """:func:`vertex_visibility` of the covered pixels of ``rast``, by the kernels the switch picks."""
    pos, vdepth, depth = pos.detach(), vdepth.detach(), depth.detach()
    if use_warp(pos):
        d = pos.dtype
        return _visibility_warp(
            pos.contiguous(),
            vdepth.to(d).contiguous(),
            depth.to(d).contiguous(),
            rast.detach().to(d).contiguous(),
            tol.to(d).contiguous(),
        )
    return vertex_visibility(pos, vdepth, depth, rast[..., 3] > 0, tol)

"""The optional ``"nvdiffrast"`` backend (CUDA only; NVIDIA Source Code License, non-commercial).

Imported lazily; one ``RasterizeCudaContext`` is cached per device. nvdiffrast's image rows are bottom-up, so
the rast is flipped to facezoo's top-row-first order at this boundary. nvdiffrast has no backface culling:
with ``cull_backface`` each batch item is rasterized with its front-facing triangles only and the ids
mapped back.
"""

from __future__ import annotations

import functools

import torch

from facezoo.render.backends import Backend


@functools.cache
def _module():
    try:
        import nvdiffrast.torch as dr
    except Exception:
        return None
    return dr


_CONTEXTS: dict[torch.device, object] = {}


def _context(device: torch.device):
    if device not in _CONTEXTS:
        _CONTEXTS[device] = _module().RasterizeCudaContext(device=device)
    return _CONTEXTS[device]


def available(device: torch.device) -> bool:
    return device.type == "cuda" and _module() is not None


def rasterize_nvdiffrast(
    pos_clip: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int], cull_backface: bool
) -> torch.Tensor:  # pragma: no cover - needs CUDA and nvdiffrast
    dr = _module()
    ctx = _context(pos_clip.device)
    pos = pos_clip.float().contiguous()
    tri32 = tri.to(torch.int32).contiguous()
    if not cull_backface:
        rast, _ = dr.rasterize(ctx, pos, tri32, resolution=list(resolution))
        return rast.flip(1)
    v = pos[:, tri32.long()]  # [B,T,3,4]
    xyw = v[..., [0, 1, 3]]
    det = (xyw[:, :, 0] * torch.linalg.cross(xyw[:, :, 1], xyw[:, :, 2], dim=-1)).sum(-1)
    out = []
    for b in range(pos.shape[0]):
        front = (det[b] > 0).nonzero().squeeze(1)
        rast, _ = dr.rasterize(ctx, pos[b : b + 1].contiguous(), tri32[front].contiguous(), list(resolution))
        ids = rast[..., 3:].long()
        mapped = torch.where(ids > 0, front[(ids - 1).clamp(min=0)] + 1, 0).to(rast.dtype)
        out.append(torch.cat([rast[..., :3], mapped], -1))
    return torch.cat(out).flip(1)


BACKEND = Backend(name="nvdiffrast", available=available, rasterize=rasterize_nvdiffrast)

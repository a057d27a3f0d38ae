"""The builtin rasterizer: Warp kernels where Warp imports, else the same algorithm in pure PyTorch.

Both implementations compute the same thing in float64 (see ``_warp_kernels``): a z-buffer of packed
``(quantised z/w, triangle)`` int64 keys reduced with min, then a per-pixel resolve of the winning triangle's
perspective-correct barycentrics. Ties in depth go to the lower triangle index.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import torch

EMPTY_KEY = torch.iinfo(torch.int64).max
DEPTH_SCALE = 2147483648.0
_TRI_SHIFT = 4294967296


@functools.cache
def _warp():
    """The initialised ``warp`` module and our kernels, or None when Warp is not importable."""
    if os.environ.get("FACEZOO_NO_WARP"):
        return None
    try:
        import warp as wp

        wp.config.quiet = True
        if hasattr(wp, "LOG_ERROR"):  # Warp >= 1.10: no greeting, no CPU-only CUDA warning
            wp.config.log_level = wp.LOG_ERROR
        wp.init()
        from facezoo.render.backends import _warp_kernels as kernels

        wp.load_module(kernels, device="cpu")  # compile (or load from Warp's cache) once, before any threads
    except Exception:  # pragma: no cover - depends on the installation
        return None
    return wp, kernels


def warp_available() -> bool:
    """Whether the Warp kernels can be used."""
    return _warp() is not None


@functools.cache
def _pool(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix="facezoo-raster")


def _chunks(batch: int, n: int) -> list[tuple[int, int]]:
    n = max(1, min(n, batch))
    step = -(-batch // n)
    return [(b0, min(batch, b0 + step)) for b0 in range(0, batch, step)]


def rasterize_warp(pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool) -> torch.Tensor:
    """Warp implementation. ``pos [B,V,4]`` float64 contiguous, ``tri [T,3]`` int32 -> rast ``[B,H,W,4]``
    float64.

    On CPU, Warp runs a launch on one thread; the batch is split across ``torch.get_num_threads()`` Python
    threads (ctypes releases the GIL during a launch), which scales on multi-core machines.
    """
    wp, k = _warp()
    batch = pos.shape[0]
    zbuf = torch.full((batch, height, width), EMPTY_KEY, dtype=torch.int64, device=pos.device)
    out = torch.empty((batch, height, width, 4), dtype=torch.float64, device=pos.device)
    wpos = wp.from_torch(pos, dtype=wp.vec4d)
    wtri = wp.from_torch(tri, dtype=wp.vec3i)
    wz = wp.from_torch(zbuf)
    wout = wp.from_torch(out, dtype=wp.vec4d)
    n_tri = tri.shape[0]
    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        device = wp.device_from_torch(pos.device)
        stream = wp.stream_from_torch(pos.device)
        with wp.ScopedStream(stream):
            wp.launch(
                k.zbuffer_kernel,
                dim=batch * n_tri,
                inputs=[wpos, wtri, height, width, int(cull), 0, wz],
                device=device,
            )
            wp.launch(
                k.resolve_kernel,
                dim=batch * height * width,
                inputs=[wpos, wtri, wz, height, width, 0, wout],
                device=device,
            )
        return out

    def run(span: tuple[int, int]) -> None:
        b0, b1 = span
        nb = b1 - b0
        wp.launch(
            k.zbuffer_kernel,
            dim=nb * n_tri,
            inputs=[wpos, wtri, height, width, int(cull), b0, wz],
            device="cpu",
        )
        wp.launch(
            k.resolve_kernel,
            dim=nb * height * width,
            inputs=[wpos, wtri, wz, height, width, b0, wout],
            device="cpu",
        )

    spans = _chunks(batch, torch.get_num_threads())
    if len(spans) == 1 or n_tri * batch < 4096:
        for span in spans:
            run(span)
    else:
        list(_pool(len(spans)).map(run, spans))
    return out


def _pixel_ndc(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(height, device=device, dtype=torch.float64)
    cols = torch.arange(width, device=device, dtype=torch.float64)
    return 1.0 - (2 * rows + 1) / height, (2 * cols + 1) / width - 1.0


def rasterize_torch(
    pos: torch.Tensor, tri: torch.Tensor, height: int, width: int, cull: bool
) -> torch.Tensor:
    """Pure-PyTorch implementation of the same algorithm (fallback; also the reference the Warp kernels are
    tested against). Enumerates each triangle's pixel bounding box with ``repeat_interleave`` and reduces the
    packed keys with ``scatter_reduce(amin)``."""
    batch, n_vert, _ = pos.shape
    device = pos.device
    tri = tri.long()
    n_tri = tri.shape[0]
    v = pos[:, tri]  # [B,T,3,4]
    xyw = v[..., [0, 1, 3]]  # [B,T,3,3] homogeneous 2D vertices
    w = v[..., 3]
    n = torch.stack(
        [
            torch.linalg.cross(xyw[:, :, 1], xyw[:, :, 2]),
            torch.linalg.cross(xyw[:, :, 2], xyw[:, :, 0]),
            torch.linalg.cross(xyw[:, :, 0], xyw[:, :, 1]),
        ],
        dim=2,
    )  # [B,T,3(edge),3]
    det = (xyw[:, :, 0] * n[:, :, 0]).sum(-1)
    keep = (det != 0) & (w > 0).any(-1)
    if cull:
        keep &= det > 0
    all_front = (w > 0).all(-1)
    safe_w = torch.where(w > 0, w, torch.ones_like(w))
    xs = (v[..., 0] / safe_w + 1.0) * width * 0.5 - 0.5
    ys = (1.0 - v[..., 1] / safe_w) * height * 0.5 - 0.5
    # bounding boxes in pixel-index coordinates; full screen where a vertex is behind the eye
    c0 = torch.where(all_front, torch.ceil(xs.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=width)
    c1 = torch.where(all_front, torch.floor(xs.amax(-1) + 1e-9), width - 1.0).clamp(min=-1.0, max=width - 1.0)
    r0 = torch.where(all_front, torch.ceil(ys.amin(-1) - 1e-9), 0.0).clamp(min=0.0, max=height)
    r1 = torch.where(all_front, torch.floor(ys.amax(-1) + 1e-9), height - 1.0).clamp(
        min=-1.0, max=height - 1.0
    )
    bw = (c1 - c0 + 1).clamp(min=0).long()
    bh = (r1 - r0 + 1).clamp(min=0).long()
    count = torch.where(keep, bw * bh, 0).reshape(-1)
    zbuf = torch.full((batch * height * width,), EMPTY_KEY, dtype=torch.int64, device=device)
    total = int(count.sum())
    if total > 0:
        face = torch.repeat_interleave(torch.arange(batch * n_tri, device=device), count)
        start = torch.cumsum(count, 0) - count
        local = torch.arange(total, device=device) - start[face]
        bwf = bw.reshape(-1)[face]
        col = c0.reshape(-1)[face].long() + local % bwf
        row = r0.reshape(-1)[face].long() + local // bwf
        p = torch.stack(
            [
                (2 * col + 1) / width - 1.0,
                1.0 - (2 * row + 1) / height,
                torch.ones_like(col, dtype=torch.float64),
            ],
            dim=-1,
        )
        nf = n.reshape(batch * n_tri, 3, 3)[face] / det.reshape(-1)[face, None, None]
        lam = (nf * p[:, None, :]).sum(-1)  # [P,3]
        inside = (lam >= 0).all(-1) & (lam.sum(-1) > 0)
        zw = (lam * v[..., 2].reshape(batch * n_tri, 3)[face]).sum(-1)
        inside &= (zw >= -1.0) & (zw <= 1.0)
        b = face // n_tri
        t = face % n_tri
        q = ((zw * 0.5 + 0.5) * DEPTH_SCALE).long()
        key = q * _TRI_SHIFT + t
        pix = (b * height + row) * width + col
        zbuf.scatter_reduce_(0, pix[inside], key[inside], reduce="amin")
    return resolve_torch(pos, tri, zbuf.view(batch, height, width))


def resolve_torch(pos: torch.Tensor, tri: torch.Tensor, zbuf: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentrics of the winning triangles of a key z-buffer ``[B,H,W]`` -> rast ``[B,H,W,4]``."""
    batch, height, width = zbuf.shape
    covered = zbuf != EMPTY_KEY
    t = torch.where(covered, zbuf % _TRI_SHIFT, 0)
    b = torch.arange(batch, device=pos.device)[:, None, None].expand_as(t)
    v = pos[b[..., None], tri[t]]  # [B,H,W,3,4]
    xyw = v[..., [0, 1, 3]]
    ny, nx = _pixel_ndc(height, width, pos.device)
    p = torch.stack(
        torch.broadcast_tensors(
            nx[None, :], ny[:, None], torch.ones(1, 1, dtype=torch.float64, device=pos.device)
        ),
        -1,
    )
    p = p.expand(batch, height, width, 3)
    e = torch.stack(
        [
            (torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 2, :], xyw[..., 0, :]) * p).sum(-1),
            (torch.linalg.cross(xyw[..., 0, :], xyw[..., 1, :]) * p).sum(-1),
        ],
        -1,
    )
    det = (xyw[..., 0, :] * torch.linalg.cross(xyw[..., 1, :], xyw[..., 2, :])).sum(-1)
    s = e.sum(-1)
    s = torch.where(covered, s, torch.ones_like(s))
    det = torch.where(covered, det, torch.ones_like(det))
    zw = (e * v[..., 2]).sum(-1) / det
    out = torch.stack([e[..., 0] / s, e[..., 1] / s, zw, (t + 1).double()], -1)
    return torch.where(covered[..., None], out, torch.zeros_like(out))


def barycentric_grad_warp(
    pos: torch.Tensor, tri: torch.Tensor, rast: torch.Tensor, grad: torch.Tensor
) -> torch.Tensor:
    """Warp implementation of the rast -> pos_clip backward: one thread per pixel, atomic adds into
    ``[B,V,4]`` float64 (on CPU each thread owns a batch chunk, so the adds never race)."""
    wp, k = _warp()
    batch, height, width = rast.shape[:3]
    gpos = torch.zeros(pos.shape, dtype=torch.float64, device=pos.device)
    args = [
        wp.from_torch(pos.detach().double().contiguous(), dtype=wp.vec4d),
        wp.from_torch(tri.to(torch.int32).contiguous(), dtype=wp.vec3i),
        wp.from_torch(rast.detach().double().contiguous(), dtype=wp.vec4d),
        wp.from_torch(grad.double().contiguous(), dtype=wp.vec4d),
        height,
        width,
    ]
    wg = wp.from_torch(gpos, dtype=wp.vec4d)
    if pos.device.type == "cuda":  # pragma: no cover - needs CUDA
        with wp.ScopedStream(wp.stream_from_torch(pos.device)):
            wp.launch(
                k.bary_grad_kernel,
                dim=batch * height * width,
                inputs=[*args, 0, wg],
                device=wp.device_from_torch(pos.device),
            )
        return gpos

    def run(span: tuple[int, int]) -> None:
        b0, b1 = span
        wp.launch(k.bary_grad_kernel, dim=(b1 - b0) * height * width, inputs=[*args, b0, wg], device="cpu")

    spans = _chunks(batch, torch.get_num_threads())
    if len(spans) == 1:
        run(spans[0])
    else:
        list(_pool(len(spans)).map(run, spans))
    return gpos

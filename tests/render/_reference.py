"""A slow, obviously-correct rasterizer in NumPy float64 (per pixel, per triangle) and small mesh helpers."""

from __future__ import annotations

import math

import numpy as np
import torch


def reference_rasterize(pos: np.ndarray, tri: np.ndarray, height: int, width: int, cull: bool = False):
    """Returns (ids [B,H,W] (-1 empty), bary [B,H,W,3], zw [B,H,W], margin [B,H,W], gap [B,H,W]).

    margin: the smallest barycentric of the winner (distance from an edge); gap: z/w distance to the
    runner-up. Solves ``sum_i b_i (x_i, y_i, w_i) = s (px, py, 1)`` with ``sum b_i = 1`` directly for each
    pixel.
    """
    batch = pos.shape[0]
    ids = -np.ones((batch, height, width), int)
    bary = np.zeros((batch, height, width, 3))
    zbuf = np.full((batch, height, width), np.inf)
    second = np.full((batch, height, width), np.inf)
    margin = np.zeros((batch, height, width))
    for b in range(batch):
        for r in range(height):
            py = 1 - (2 * r + 1) / height
            for c in range(width):
                px = (2 * c + 1) / width - 1
                for t, (i, j, k) in enumerate(tri):
                    m = np.array([pos[b, [i, j, k], 0], pos[b, [i, j, k], 1], pos[b, [i, j, k], 3]])
                    det = np.linalg.det(m)
                    if abs(det) < 1e-12 or (cull and det < 0):
                        continue
                    lam = np.linalg.solve(m, np.array([px, py, 1.0]))  # barycentrics / w
                    s = lam.sum()
                    if s <= 0 or (lam < 0).any():
                        continue
                    bc = lam / s
                    w = 1 / s
                    zw = (bc @ pos[b, [i, j, k], 2]) / w
                    if not -1 <= zw <= 1:
                        continue
                    if zw < zbuf[b, r, c]:
                        second[b, r, c] = zbuf[b, r, c]
                        zbuf[b, r, c], ids[b, r, c], bary[b, r, c] = zw, t, bc
                        margin[b, r, c] = bc.min()
                    elif zw < second[b, r, c]:
                        second[b, r, c] = zw
    with np.errstate(invalid="ignore"):
        gap = second - zbuf
    return ids, bary, np.where(ids >= 0, zbuf, 0), margin, gap


def grid_surface(n_vertices: int, batch: int = 1, dtype=torch.float32):
    """A perspective-camera view of an ellipsoidal cap on a k x k grid: pos_clip [B,V,4], tri [T,3] int32."""
    k = int(math.sqrt(n_vertices))
    u = torch.linspace(-1, 1, k, dtype=torch.float64)
    y, x = torch.meshgrid(u, u, indexing="ij")
    z = torch.sqrt((1.3 - 0.5 * x**2 - 0.5 * y**2).clamp(min=0)) * 0.4
    v = torch.stack((0.7 * x, 0.8 * y, z - 3.0), -1).reshape(-1, 3)  # view space, camera at the origin
    near, far, f = 1.0, 10.0, 3.0
    clip = torch.stack(
        (
            f * v[:, 0],
            f * v[:, 1],
            -(far + near) / (far - near) * v[:, 2] - 2 * far * near / (far - near),
            -v[:, 2],
        ),
        -1,
    )
    idx = torch.arange(k * k).reshape(k, k)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    tri = torch.cat((torch.stack((a, b, d), -1).reshape(-1, 3), torch.stack((a, d, c), -1).reshape(-1, 3)))
    return clip[None].repeat(batch, 1, 1).to(dtype).contiguous(), tri.int()

"""Picture panels shared by the preview callback, the prediction writer and ``facezoo demo``.

``input | reconstruction overlay | shaded mesh``: the overlay composites the rendered reconstruction over the
input through its coverage mask and marks the projected landmarks; the shaded mesh is the reconstructed
geometry under a fixed grey albedo and a fixed light, in the predicted pose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: A fixed light for the "shaded mesh" panel: Deep3DFace SH, ambient plus light from the upper left-front.
_SHADE_LIGHT = (0.6, -0.2, 0.25, 0.15, 0.0, 0.0, 0.0, 0.0, 0.0)


def draw_points(image: Tensor, points: Tensor, colour: tuple[float, float, float], radius: int = 0) -> Tensor:
    """Mark ``points [B,N,2]`` (pixels) on ``image [B,3,H,W]`` with square dots of ``2 radius + 1`` px
    (copy)."""
    out = image.clone()
    b, _, h, w = image.shape
    c = torch.tensor(colour, dtype=image.dtype, device=image.device)[:, None]
    for i in range(b):
        xy = points[i].detach().floor().long()
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                x, y = xy[:, 0] + dx, xy[:, 1] + dy
                keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
                out[i, :, y[keep], x[keep]] = c
    return out


def shaded_mesh(method, rec) -> Tensor:
    """``[B,3,H,W]`` the reconstructed mesh in grey under a fixed light, in the predicted pose (black
    background)."""
    v = rec.vertices
    light = v.new_tensor(_SHADE_LIGHT).repeat(3)[None].expand(v.shape[0], 27)
    grey = v.new_full((1, v.shape[1], 3), 0.7)
    with torch.no_grad():
        out = method.renderer(v, rec.triangles, rec.camera, colors=grey, lighting=light, background=0.0)
    return out.image.clamp(0, 1)


def panels(method, rec, images: Tensor, target_landmarks: Tensor | None = None) -> Tensor:
    """``[B,3,H,3W]``: input | overlay (render over input; predicted landmarks green, targets red) | shaded
    mesh.

    ``rec`` must carry ``image`` and ``mask`` (``method.reconstruct(batch, render=True)``).
    """
    if rec.image is None or rec.mask is None:
        raise ValueError(
            "panels: the reconstruction has no rendered image; use reconstruct(batch, render=True)"
        )
    images = images.to(rec.image)
    overlay = rec.mask * rec.image.clamp(0, 1) + (1 - rec.mask) * images
    r = max(0, images.shape[-1] // 128)
    if target_landmarks is not None:
        overlay = draw_points(overlay, target_landmarks.to(overlay), (1.0, 0.2, 0.2), r)
    overlay = draw_points(overlay, rec.landmarks2d, (0.2, 1.0, 0.2), r)
    return torch.cat((images, overlay, shaded_mesh(method, rec)), dim=-1)


def grid(rows: Tensor) -> Tensor:
    """Stack ``[B,3,h,w]`` rows vertically into one ``[3,B*h,w]`` image."""
    return torch.cat(list(rows), dim=-2)


def save_png(image: Tensor, path: str | Path) -> Path:
    """Write ``image [3,H,W]`` in [0, 1] as an 8-bit RGB PNG (parents created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path

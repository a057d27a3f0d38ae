"""Cylindrical UV unwrap, the fallback parameterisation for models without UVs."""

from __future__ import annotations

import math

import numpy as np
import torch

_AXES = {"x": 0, "y": 1, "z": 2}


def cylindrical_uv(vertices: torch.Tensor | np.ndarray, axis: str = "y") -> torch.Tensor | np.ndarray:
    """Unwrap a mesh onto a cylinder around a vertical axis through the centroid.

    With ``axis="y"`` (model space: +y up, +z toward the viewer) and c the vertex centroid,
    u = 0.5 + atan2(x - c_x, z - c_z) / (2 pi) and v = (y - y_min) / (y_max - y_min):
    the front (+z) maps to u = 0.5, u grows toward +x (the image right in a frontal view) and the cut lies
    behind the head (-z), where a face mesh has no vertices; v points up, as in OpenGL texture space.
    Other axes permute the coordinates cyclically: around x, u = 0.5 + atan2(z, y) / (2 pi); around z,
    u = 0.5 + atan2(y, x) / (2 pi) (u measured from the axis after ``axis`` toward the one after that).
    u is *not* rescaled to the azimuth range actually used (a face front covers roughly u in [0.2, 0.8]);
    v is rescaled to fill [0, 1]. A mesh of zero height gets v = 0.5.

    Args:
        vertices: [V,3] points (any unit); a numpy array gives a numpy result.
        axis: "x", "y" or "z", the cylinder axis.

    Returns:
        [V,2] (u, v) in [0, 1], same dtype (floating) and device as ``vertices``.

    Example:
        >>> uv = cylindrical_uv(torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 1.0, -1.0]]))
        >>> uv.tolist()
        [[0.5, 0.0], [0.75, 0.5], [0.125, 1.0]]
    """
    if axis not in _AXES:
        raise ValueError(f"cylindrical_uv: axis must be one of 'x', 'y', 'z', got {axis!r}")
    as_numpy = isinstance(vertices, np.ndarray)
    v = torch.from_numpy(vertices) if as_numpy else vertices
    if not isinstance(v, torch.Tensor):
        raise TypeError(
            f"cylindrical_uv: vertices must be a torch.Tensor or numpy array, got {type(vertices)}"
        )
    if v.ndim != 2 or v.shape[-1] != 3 or v.shape[0] == 0:
        raise ValueError(f"cylindrical_uv: vertices must have shape [V,3] with V > 0, got {tuple(v.shape)}")
    if not v.is_floating_point():
        v = v.to(torch.get_default_dtype())
    k = _AXES[axis]
    p = v - v.mean(0, keepdim=True)
    front, side = p[:, (k + 1) % 3], p[:, (k + 2) % 3]
    u = 0.5 + torch.atan2(side, front) / (2.0 * math.pi)
    h = v[:, k]
    span = h.max() - h.min()
    vv = (h - h.min()) / span if span > 0 else torch.full_like(h, 0.5)
    out = torch.stack([u, vv], -1).clamp(0.0, 1.0)
    return out.numpy() if as_numpy else out


#: iBUG-68 landmark indices of the four facial parts of the nonlinear 3DMM's local pathway (Tran et al. 2019,
#: §3.4: "eyes, nose and mouth"): each eye with its eyebrow, the nose (bridge + nostrils), the mouth.
PART_LANDMARKS: dict[str, tuple[int, ...]] = {
    "eye_right": tuple(range(17, 22)) + tuple(range(36, 42)),  # subject's right = image left
    "eye_left": tuple(range(22, 27)) + tuple(range(42, 48)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
}


def uv_part_boxes(
    uv: torch.Tensor,
    landmarks68: torch.Tensor,
    uv_size: tuple[int, int],
    margin: float = 0.25,
    multiple: int = 8,
) -> tuple[tuple[int, int, int, int], ...]:
    """The local pathway's part boxes ``(top, left, height, width)`` in texels of an ``H x W`` UV map, from
    the model's landmarks in UV (not constants for one layout).

    For each part of :data:`PART_LANDMARKS` (right eye, left eye, nose, mouth) the texel bounding box of its
    landmarks' UVs (row ``(1 - v) H``, column ``u W``: v up, top-row-first as
    :func:`facezoo.render.render_uv`)
    is grown by ``margin`` times its size on every side, its height and width are rounded up to a multiple of
    ``multiple`` (the local networks up-sample three times from ``h/8 x w/8``), and it is shifted inside the
    map.

    Args:
        uv: ``[V,2]`` texture coordinates in [0, 1].
        landmarks68: ``[68]`` vertex indices of the iBUG-68 landmarks.
        uv_size: ``(H, W)`` of the UV map.
        margin: relative growth per side.
        multiple: box sides are multiples of this.

    Returns:
        Four boxes of ints, in the order right eye, left eye, nose, mouth.

    Example:
        >>> uv = torch.rand(100, 2); lm = torch.arange(68)
        >>> boxes = uv_part_boxes(uv, lm, (32, 40))
        >>> len(boxes), all(b[2] % 8 == 0 and b[3] % 8 == 0 and b[0] + b[2] <= 32 for b in boxes)
        (4, True)
    """
    h, w = int(uv_size[0]), int(uv_size[1])
    if h < multiple or w < multiple:
        raise ValueError(f"uv_part_boxes: uv_size {uv_size} must be at least {multiple} texels per side")
    if not isinstance(uv, torch.Tensor) or uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv_part_boxes: uv must be a [V,2] tensor, got {getattr(uv, 'shape', type(uv))}")
    lm = torch.as_tensor(landmarks68).long().to(uv.device)
    if lm.shape != (68,):
        raise ValueError(f"uv_part_boxes: landmarks68 must be [68] vertex indices, got {tuple(lm.shape)}")
    pts = uv.detach().double().cpu()[lm.cpu()]
    boxes = []
    for idx in PART_LANDMARKS.values():
        p = pts[list(idx)]
        rows, cols = (1.0 - p[:, 1]) * h, p[:, 0] * w
        r0, r1, c0, c1 = float(rows.min()), float(rows.max()), float(cols.min()), float(cols.max())
        dr, dc = margin * max(r1 - r0, 1.0), margin * max(c1 - c0, 1.0)
        r0, r1, c0, c1 = r0 - dr, r1 + dr, c0 - dc, c1 + dc
        bh = min(h - h % multiple, max(multiple, math.ceil((r1 - r0) / multiple) * multiple))
        bw = min(w - w % multiple, max(multiple, math.ceil((c1 - c0) / multiple) * multiple))
        top = int(round((r0 + r1) / 2 - bh / 2))
        left = int(round((c0 + c1) / 2 - bw / 2))
        top, left = min(max(top, 0), h - bh), min(max(left, 0), w - bw)
        boxes.append((top, left, int(bh), int(bw)))
    return tuple(boxes)

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

"""Rasterizer backends: a small registry mapping a name to an implementation.

The backend boundary is nvdiffrast's contract (see :mod:`facezoo.render`): a backend provides
``available(device) -> bool`` and ``rasterize(pos_clip, tri, (H, W), cull_backface) -> rast``, facezoo's
top-row-first rast whose (u, v, z/w) channels are differentiable w.r.t. ``pos_clip``. ``interpolate`` and
``antialias`` read only that rast contract, so facezoo's own implementations serve every backend; shading,
normals and visibility are stages of :class:`~facezoo.render.MeshRenderer`, never a backend's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Backend:
    name: str
    available: Callable[[torch.device], bool]
    rasterize: Callable[[torch.Tensor, torch.Tensor, tuple[int, int], bool], torch.Tensor]


BACKENDS: dict[str, Backend] = {}
#: backends tried in this order by ``backend="auto"``
AUTO_ORDER: list[str] = []


def register(backend: Backend, auto_priority: int | None = None) -> None:
    """Add a backend; ``auto_priority`` (0 first) makes ``"auto"`` consider it."""
    BACKENDS[backend.name] = backend
    if auto_priority is not None and backend.name not in AUTO_ORDER:
        AUTO_ORDER.insert(min(auto_priority, len(AUTO_ORDER)), backend.name)


def get_backend(name: str, device: torch.device) -> Backend:
    """The backend called ``name`` (or the first available one for ``"auto"``) for tensors on ``device``."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            if BACKENDS[candidate].available(device):
                return BACKENDS[candidate]
        raise RuntimeError(f"no rasterizer backend is available on {device}")  # pragma: no cover
    if name not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {sorted(BACKENDS)}, got {name!r}")
    backend = BACKENDS[name]
    if not backend.available(device):
        raise RuntimeError(f"rasterizer backend {name!r} is not available on {device}")
    return backend


def _register_defaults() -> None:
    from facezoo.render.backends import builtin, nvdiffrast_backend

    register(nvdiffrast_backend.BACKEND, auto_priority=0)
    register(builtin.BACKEND, auto_priority=1)


_register_defaults()

"""Per-tensor memo of values derived from a mesh's triangles (int32 copy, edge adjacency): a renderer
gets the same ``triangles`` tensor every call, so these are computed once.

Entries are keyed by the tensor's identity and checked against a weak reference and its version counter,
so an in-place edit or a new tensor at a reused address never sees a stale value.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

_CACHE: dict[tuple[int, str], tuple[weakref.ref, int, torch.Tensor]] = {}


def cached(tensor: torch.Tensor, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn(tensor)``, computed once per (tensor, name) while the tensor lives and is unmodified."""
    if tensor.is_inference():  # no version counter to validate an entry with: compute, don't memoise
        return fn(tensor)
    key = (id(tensor), name)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is tensor and hit[1] == tensor._version:
        return hit[2]
    value = fn(tensor)
    if len(_CACHE) > 64:
        for k in [k for k, v in _CACHE.items() if v[0]() is None]:
            del _CACHE[k]
        if len(_CACHE) > 64:
            _CACHE.clear()
    _CACHE[key] = (weakref.ref(tensor), tensor._version, value)
    return value


def tri_int32(tri: torch.Tensor) -> torch.Tensor:
    """``tri`` as a contiguous int32 tensor (cached)."""
    if tri.dtype == torch.int32 and tri.is_contiguous():
        return tri
    return cached(tri, "int32", lambda t: t.to(torch.int32).contiguous())

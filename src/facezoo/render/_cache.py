"""One memo for values derived from tensors the renderer sees again and again: the int32 copy and edge
adjacency of a mesh's triangles (a renderer gets the same ``triangles`` tensor every call) and the
rasterizer's by-products for the ``rast`` it returned (:func:`facezoo.render.antialias` after
:func:`facezoo.render.rasterize` reuses them).

An entry belongs to an *owner* tensor and lives exactly as long as it: it is freed by a finalizer when the
owner is, not by a size limit. It is returned only while the owner and the tensors it depends on are the
very data it was made from, checked by a fingerprint (storage, shape, strides, dtype and version counter), so
an in-place edit, or a new tensor at a reused address, never sees a stale value. The entry holds its
dependencies, so their memory cannot be reused by other data while it lives. Inference tensors have no
version counter to prove the data unchanged: nothing is memoised for them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

_MEMO: dict[tuple[int, str], tuple] = {}


def _fingerprint(x: torch.Tensor) -> tuple:
    return (x.data_ptr(), x.shape, x.stride(), x.dtype, x._version)


def remember(owner: torch.Tensor, name: str, value: Any, *depends: torch.Tensor) -> None:
    """Keep ``value`` under ``(owner, name)`` while ``owner`` lives, valid while ``owner`` and ``depends`` are
    unmodified (see :func:`recall`)."""
    if any(x.is_inference() for x in (owner, *depends)):
        return
    key = (id(owner), name)
    fresh = key not in _MEMO
    # the weak reference tells a live owner from a new tensor that reuses a freed one's id
    _MEMO[key] = (weakref.ref(owner), _fingerprint(owner), depends, [_fingerprint(d) for d in depends], value)
    if fresh:
        weakref.finalize(owner, _MEMO.pop, key, None)


def recall(owner: torch.Tensor, name: str, *depends: torch.Tensor) -> Any | None:
    """The value :func:`remember` kept under ``(owner, name)`` if ``owner`` and ``depends`` still hold the
    data it saw (same storage, shape, strides, dtype, version); else None."""
    hit = _MEMO.get((id(owner), name))
    if hit is None or any(x.is_inference() for x in (owner, *depends)):
        return None
    ref, owner_fp, kept, kept_fps, value = hit
    same = (
        ref() is owner
        and owner_fp == _fingerprint(owner)
        and len(kept) == len(depends)
        and all(fp == _fingerprint(d) for fp, d in zip(kept_fps, depends))
    )
    return value if same else None


def cached(tensor: torch.Tensor, name: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn(tensor)``, computed once per (tensor, name) while the tensor lives and is unmodified."""
    value = recall(tensor, name)
    if value is None:
        value = fn(tensor)
        remember(tensor, name, value)
    return value


def tri_int32(tri: torch.Tensor) -> torch.Tensor:
    """``tri`` as a contiguous int32 tensor (cached)."""
    if tri.dtype == torch.int32 and tri.is_contiguous():
        return tri
    return cached(tri, "int32", lambda t: t.to(torch.int32).contiguous())

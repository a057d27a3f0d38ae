"""The view-axis convention: how image sets and multi-view batches travel through the methods.

A batch whose ``image`` is ``[B,V,3,H,W]`` (image sets of one identity, multi-view triplets, verification
pairs) stacks a view axis on every **per-image** key: ``landmarks68 [B,V,68,2]``, ``landmarks5``,
``landmarks68_3d``, ``mask [B,V,1,H,W]``, ``affine [B,V,2,3]``, ``yaw [B,V]``, ``view [B,V]`` and every
``params`` entry (``params["id"] [B,V,K]``, ``params["vertices"] [B,V,N,3]``). **Per-sample** keys
(:data:`PER_SAMPLE_KEYS`: ``identity``, ``index``, ``path``, ``same``, ``pair_index``, the ``valid`` masks)
have no view axis.

Everything after the network works on **rows, one per image**: :func:`flatten_views` turns such a batch into
a flat batch of ``B*V`` rows, sample-major (row ``b*V + v`` is view ``v`` of sample ``b``); per-sample keys
are repeated over their sample's views so that each row carries its own label and mask. A single-image batch
(``image [B,3,H,W]``) is returned as it is.

* A method's ``reconstruct(batch)`` takes the batch as the loader gives it (the network may need the set:
  C-Net aggregation, MVF-Net's concatenated features) and returns a
  :class:`~facezoo.methods.FaceReconstruction` with one row per image and ``views = V``. A method that
  predicts one shape per set (MVF-Net, an aggregated identity) repeats that shape over the set's rows
  (``expand``; the per-view camera and landmarks differ).
* Losses, :meth:`FaceMethod.evaluate`, the metrics and the exports read the flat batch, row for row with the
  reconstruction; the metrics (:class:`~facezoo.metrics.LandmarkNME`, vertex error, ...) never see ``V``.
* Protocols that need the grouping (MICC's per-sequence average, verification pairs) reshape rows back to
  ``[B,V,...]`` with ``rec.views``.

Example:
    >>> batch = {"image": torch.zeros(2, 3, 3, 8, 8), "yaw": torch.zeros(2, 3), "index": torch.tensor([4, 7]),
    ...          "params": {"id": torch.zeros(2, 3, 5)},
    ...          "valid": {"landmarks68": torch.tensor([True, False])}}
    >>> flat = flatten_views(batch)
    >>> tuple(flat["image"].shape), flat["index"].tolist(), flat["valid"]["landmarks68"].tolist()
    ((6, 3, 8, 8), [4, 4, 4, 7, 7, 7], [True, True, True, False, False, False])
    >>> num_views(batch), tuple(flat["params"]["id"].shape)
    (3, (6, 5))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch  # noqa: F401 (the doctests use it)
from torch import Tensor

#: keys that describe a whole sample (no view axis), repeated over its views by :func:`flatten_views`.
PER_SAMPLE_KEYS = ("identity", "index", "path", "same", "pair_index")


def num_views(batch: Mapping[str, Any]) -> int:
    """``V`` of a view-stacked batch (``image [B,V,3,H,W]``), 1 for single images ``[B,3,H,W]``.

    Raises:
        ValueError: ``image`` is missing or is neither 4-D nor 5-D with 3 channels.
    """
    image = batch.get("image")
    if not isinstance(image, Tensor):
        raise ValueError(f"batch: expected an 'image' tensor, got keys {sorted(batch)}")
    if image.ndim == 4 and image.shape[1] == 3:
        return 1
    if image.ndim == 5 and image.shape[2] == 3:
        return int(image.shape[1])
    raise ValueError(f"image: expected [B,3,H,W] or [B,V,3,H,W], got {tuple(image.shape)}")


def flatten_views(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch with its view axis folded into the batch axis (module docstring): ``[B,V,...] -> [B*V,...]``
    for per-image keys and ``params``; per-sample tensors, lists and ``valid`` masks repeated ``V`` times.
    Returns ``batch`` itself (a shallow copy) for single images."""
    v = num_views(batch)
    if v == 1:
        return dict(batch)
    b = batch["image"].shape[0]
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key == "params" and isinstance(value, Mapping):
            out[key] = {k: _fold(x, b, v, key=f"params.{k}") for k, x in value.items()}
        elif key == "valid" and isinstance(value, Mapping):
            out[key] = {k: _repeat(m, b, v) for k, m in value.items()}
        elif key in PER_SAMPLE_KEYS:
            out[key] = _repeat(value, b, v)
        elif isinstance(value, Tensor) and value.ndim >= 2 and tuple(value.shape[:2]) == (b, v):
            out[key] = value.flatten(0, 1)
        else:
            out[key] = value  # batch-level extras (e.g. "skipped")
    return out


def unflatten_views(x: Tensor, views: int) -> Tensor:
    """Rows ``[B*V,...]`` back to ``[B,V,...]``.

    Example:
        >>> unflatten_views(torch.arange(6), 3).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    if views < 1 or x.shape[0] % views:
        raise ValueError(f"unflatten_views: {x.shape[0]} rows are not a multiple of views={views}")
    return x.reshape(x.shape[0] // views, views, *x.shape[1:])


def _fold(x: Any, b: int, v: int, key: str) -> Any:
    if not isinstance(x, Tensor):
        return x
    if x.ndim < 2 or tuple(x.shape[:2]) != (b, v):
        raise ValueError(
            f"{key}: a batch of {b} samples x {v} views needs [{b},{v},...] per-image values, got "
            f"{tuple(x.shape)}"
        )
    return x.flatten(0, 1)


def _repeat(x: Any, b: int, v: int) -> Any:
    if isinstance(x, Tensor) and x.ndim >= 1 and x.shape[0] == b:
        return x.repeat_interleave(v, dim=0)
    if isinstance(x, list) and len(x) == b:
        return [item for item in x for _ in range(v)]
    return x


__all__ = ["PER_SAMPLE_KEYS", "flatten_views", "num_views", "unflatten_views"]

"""The sample and batch dictionaries datamodules yield (docs/architecture.md, "Samples and batches").

A :class:`Sample` is a plain ``dict`` with fixed, optional keys; methods read only these keys. Multi-view and
image-set samples stack a leading view axis (``image [V,3,H,W]``, ``landmarks68 [V,68,2]``...).
:func:`collate` stacks samples into a :class:`Batch`; samples from different datasets (a
:class:`~facezoo.datamodules.Mixture`) may carry different keys: missing entries are zero-filled and
``batch["valid"][key]`` (bool ``[B]``) says which rows are real, so a loss never reads a placeholder as a
label.

Example:
    >>> import torch
    >>> s = Sample(image=torch.zeros(3, 8, 8), identity=3)
    >>> collate([s, s])["identity"]
    tensor([3, 3])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import torch
from torch import Tensor


class Sample(TypedDict, total=False):
    """One face sample. All geometry is in crop pixels (origin top-left, +y down, pixel centres at +0.5).

    Keys:
        image: ``[3,H,W]`` (or ``[V,3,H,W]``) float in [0, 1], RGB.
        landmarks68: ``[68,2]`` iBUG-68 landmarks in crop pixels.
        landmarks5: ``[5,2]`` left eye, right eye, nose tip, left mouth corner, right mouth corner (image
            left/right).
        landmarks68_3d: ``[68,3]`` 3D landmarks (x, y crop pixels; z in the same pixel scale, larger =
            nearer).
        params: ground-truth parameters, e.g. ``id [Kid]``, ``exp [Kexp]``, ``pose [7]`` (300W-LP convention).
        identity: identity label (int, dataset-specific contiguous index).
        view: view index (0 = frontal, 1 = left, 2 = right for triplets; camera index otherwise).
        yaw: yaw in degrees (300W-LP sign convention).
        mask: ``[1,H,W]`` float face/valid mask.
        affine: ``[2,3]`` float64 map from original-image pixels to crop pixels (to map predictions back).
        index: the sample's index in its dataset (to de-duplicate evaluation under DDP).
        path: source file (str) for error messages and exports.
    """

    image: Tensor
    landmarks68: Tensor
    landmarks5: Tensor
    landmarks68_3d: Tensor
    params: dict[str, Tensor]
    identity: int
    view: int
    yaw: float
    mask: Tensor
    affine: Tensor
    index: int
    path: str


class Batch(TypedDict, total=False):
    """A collated batch: the :class:`Sample` keys with a leading batch axis ``B`` (ints/floats become tensors,
    strings lists), plus ``valid`` (``dict[str, bool [B]]``, only for keys that some samples lack) and
    ``skipped`` (list of ``"path: problem"`` strings for bad samples dropped with
    ``on_bad_sample="skip"``)."""

    image: Tensor
    landmarks68: Tensor
    landmarks5: Tensor
    landmarks68_3d: Tensor
    params: dict[str, Tensor]
    identity: Tensor
    view: Tensor
    yaw: Tensor
    mask: Tensor
    affine: Tensor
    index: Tensor
    path: list[str]
    valid: dict[str, Tensor]
    skipped: list[str]


SAMPLE_KEYS = tuple(Sample.__annotations__)
_FILL_INT = {"identity": -1, "view": -1, "index": -1}


def _stack(values: list[Any], key: str) -> Any:
    first = values[0]
    if isinstance(first, Tensor):
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"collate: key {key!r} has different shapes across the batch: {sorted(shapes)}")
        if torch.utils.data.get_worker_info() is not None:
            # in a DataLoader worker, stack straight into shared memory (as torch's default_collate does):
            # the batch then crosses to the main process without another copy
            storage = first._typed_storage()._new_shared(len(values) * first.numel(), device=first.device)
            out = first.new(storage).resize_(len(values), *first.shape)
            return torch.stack(values, out=out)
        return torch.stack(values)
    if isinstance(first, bool | int):
        return torch.tensor(values, dtype=torch.int64)
    if isinstance(first, float):
        return torch.tensor(values, dtype=torch.float32)
    if isinstance(first, str):
        return list(values)
    if isinstance(first, dict):
        return _collate_dicts(values, prefix=f"{key}.")[0]
    raise TypeError(f"collate: cannot stack key {key!r} of type {type(first).__name__}")


def _placeholder(example: Any, key: str) -> Any:
    if isinstance(example, Tensor):
        return torch.zeros_like(example)
    if isinstance(example, bool | int):
        return _FILL_INT.get(key.rsplit(".", 1)[-1], 0)
    if isinstance(example, float):
        return float("nan")
    if isinstance(example, str):
        return ""
    if isinstance(example, dict):
        return {k: _placeholder(v, f"{key}.{k}") for k, v in example.items()}
    raise TypeError(f"collate: no placeholder for key {key!r} of type {type(example).__name__}")


def _collate_dicts(dicts: Sequence[dict], prefix: str = "") -> tuple[dict, dict[str, Tensor]]:
    keys: list[str] = []
    for d in dicts:
        keys.extend(k for k in d if k not in keys)
    out: dict[str, Any] = {}
    valid: dict[str, Tensor] = {}
    for key in keys:
        present = [key in d for d in dicts]
        example = next(d[key] for d in dicts if key in d)
        values = [
            d[key] if p else _placeholder(example, prefix + key) for d, p in zip(dicts, present, strict=True)
        ]
        out[key] = _stack(values, prefix + key)
        if not all(present):
            valid[prefix + key] = torch.tensor(present)
    return out, valid


def collate(samples: Sequence[Sample | None]) -> Batch:
    """Stack samples into a :class:`Batch`. Skip markers (:func:`facezoo.data.io.skip_marker`: bad samples
    skipped by a dataset with ``on_bad_sample="skip"``) and ``None`` entries are dropped, so the batch gets
    smaller; the markers' reasons (``"path: problem"``) are gathered in ``batch["skipped"]``.

    Args:
        samples: list of :class:`Sample` dicts (tensors of equal shapes per key).

    Returns:
        Batch with tensors ``[B,...]``; ``batch["valid"]`` only when some samples lack a key.
    """
    if not isinstance(samples, Sequence) or len(samples) == 0:
        raise ValueError("collate: expected a non-empty sequence of samples")
    skipped: list[str] = []
    kept = []
    for s in samples:
        if s is None:
            continue
        s = dict(s)
        skipped.extend(s.pop("_skipped", []))
        if s:  # a skip marker holds nothing but its reason
            kept.append(s)
    if not kept:
        return Batch(skipped=skipped)  # every sample was bad; the training loop sees an empty batch dict
    out, valid = _collate_dicts(kept)
    batch = Batch(**out)
    if valid:
        batch["valid"] = valid
    batch["skipped"] = skipped
    return batch


def stack_views(views: Sequence[Sample]) -> Sample:
    """One multi-view sample of one identity from per-view samples (leading view axis, docs/architecture.md).

    Tensors (and ``params`` tensors) are stacked to ``[V,...]``, ``yaw`` becomes ``[V]``, ``view`` is
    ``0..V-1`` in the given order, ``identity`` is the first view's and ``path`` joins the views' with ``|``.
    """
    if not views:
        raise ValueError("stack_views: expected at least one view")
    first = views[0]
    sample: dict[str, Any] = {
        k: torch.stack([v[k] for v in views]) for k, x in first.items() if isinstance(x, Tensor)
    }
    if "params" in first:
        sample["params"] = {k: torch.stack([v["params"][k] for v in views]) for k in first["params"]}
    if "yaw" in first:
        sample["yaw"] = torch.tensor([float(v["yaw"]) for v in views])
    sample["view"] = torch.arange(len(views))
    if "identity" in first:
        sample["identity"] = first["identity"]
    if "path" in first:
        sample["path"] = "|".join(v["path"] for v in views)
    return sample  # type: ignore[return-value]

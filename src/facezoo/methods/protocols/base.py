"""The protocol-runner interface shared by ``reconstruction``, ``micc`` and ``verification``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

#: name -> runner class (filled by :func:`facezoo.methods.protocols.register_protocol`).
PROTOCOLS: dict[str, type[ProtocolRunner]] = {}


@dataclass
class ProtocolResult:
    """What a runner's ``compute`` returns.

    Attributes:
        metrics: flat ``{key: float}``, identical on every rank, logged as ``<val|test>/<key>``.
        table: the Markdown result table ``facezoo test`` prints.
        title: one line printed above the table (units).
        details: extra JSON content (e.g. per-sequence errors), written beside ``metrics``.
    """

    metrics: dict[str, float]
    table: str = ""
    title: str = "test results"
    details: dict[str, Any] = field(default_factory=dict)


class ProtocolRunner:
    """One evaluation protocol (one epoch of ``validate``/``test``).

    A runner is created on the first evaluation batch of an epoch (so that ``torch.distributed`` is up and the
    method is on its device) and dropped after ``compute``. Metric state lives in torchmetrics ``Metric``s
    created on ``method.device``; ``compute`` is collective (every rank calls it) and returns the same
    :class:`ProtocolResult` on every rank.

    Args:
        method: the :class:`~facezoo.methods.base.FaceMethod` under evaluation.
        datamodule: the trainer's datamodule, or ``None`` (plain dataloaders).
    """

    name: ClassVar[str] = ""
    #: batch keys the protocol itself reads (besides those the method needs to reconstruct).
    batch_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, method, datamodule=None) -> None:
        self.datamodule = datamodule

    @classmethod
    def required_keys(cls, method, stage: str) -> tuple[str, ...]:
        """Batch keys needed in ``stage``: the method's ``predict`` keys (it only reconstructs) + ours."""
        keys = tuple(method._keys_for("predict"))
        return keys + tuple(k for k in cls.batch_keys if k not in keys)

    def check_batch(self, method, batch: Mapping[str, Any]) -> None:
        missing = [k for k in self.required_keys(method, "test") if k not in batch]
        if missing:
            source = type(self.datamodule).__name__ if self.datamodule is not None else "the dataloader"
            raise ValueError(
                f"the {self.name!r} protocol of {type(method).__name__} needs batch key(s) {missing}, which "
                f"{source} does not provide (batch keys: {sorted(batch)})"
            )

    def update(self, method, batch: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, method) -> ProtocolResult:  # pragma: no cover - abstract
        raise NotImplementedError


def neutral_shape(method, rec) -> Tensor:
    """The expression-free identity shape ``[N,V,3]`` (mm) of each row of a reconstruction, without gradients:
    the method's :meth:`~facezoo.methods.FaceMethod.neutral_shape` hook."""
    with torch.no_grad():
        return method.neutral_shape(rec).detach()


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` ((0, 1) when it is not initialised)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_from_zero(obj: Any) -> Any:
    """``obj`` of rank 0 on every rank (a no-op without ``torch.distributed``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(items: list) -> list:
    """The concatenation of every rank's ``items``, rank 0's first (a copy without ``torch.distributed``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(items)
    boxes: list = [None] * dist.get_world_size()
    dist.all_gather_object(boxes, items)
    return [x for box in boxes for x in box]

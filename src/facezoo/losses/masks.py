"""Row masks for mixed batches: a loss reads only the rows whose labels are real.

A :class:`~facezoo.datamodules.Mixture` batch zero-fills the labels a sample lacks and marks the real rows in
``batch["valid"][key]`` (bool ``[B]``). Every loss of :mod:`facezoo.losses` takes such a mask as ``valid``
(``None`` = every row): a row that is False contributes nothing, neither to the sum nor to the count the loss
is averaged over. With no valid row the loss is 0, still attached to the graph (so a step can backward it).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_valid(valid: Tensor | None, n: int) -> Tensor | None:
    """``valid`` as a bool ``[n]`` tensor (``None`` stays ``None``).

    Example:
        >>> check_valid(torch.tensor([1, 0]), 2).tolist()
        [True, False]
    """
    if valid is None:
        return None
    valid = torch.as_tensor(valid)
    if valid.shape != (n,):
        raise ValueError(f"valid: expected a bool mask [{n}] (one per row), got {tuple(valid.shape)}")
    return valid.to(torch.bool)


def masked_mean(values: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean of ``values [B,...]`` over the rows where ``valid [B]`` is True (all rows for ``None``); 0 with
    no valid row.

    Example:
        >>> masked_mean(torch.tensor([1.0, 100.0, 3.0]), torch.tensor([True, False, True]))
        tensor(2.)
    """
    valid = check_valid(valid, values.shape[0])
    if valid is None:
        return values.mean()
    valid = valid.to(values.device)
    if not bool(valid.any()):
        return values.sum() * 0.0
    return values[valid].mean()

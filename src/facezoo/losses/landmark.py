"""Weighted 2D landmark loss (Deep3DFace, deep3d.txt §4.1.2, Eq. 3).

``L_lan = 1/N sum_n w_n ||q_n - q'_n||^2`` over the 68 iBUG landmarks. The paper sets ``w_n = 20`` "for inner
mouth and nose points and others to 1". The official code (both the TensorFlow ``Landmark_loss`` and the
PyTorch ``landmark_loss``) weights the 0-based indices 28, 29, 30 (the lower three points of the nose bridge)
and 60-67 (the eight inner-lip points); :data:`DEEP3D_LANDMARK_WEIGHTS` follows the code, which is what the
released models were trained with. ``landmark_weights("paper")`` gives the literal reading (the whole nose,
27-35, and the inner mouth 60-67) for comparison.

Scale: the paper's weight ``w_lan = 1.6e-3`` is for landmarks in pixels of a 224x224 crop. ``landmark_loss``
takes an optional ``scale`` that multiplies the coordinates before squaring, so that methods working at
another resolution pass ``224 / image_size`` and keep the paper's weight meaningful.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import masked_mean

_NOSE_CODE = (28, 29, 30)
_NOSE_PAPER = tuple(range(27, 36))
_INNER_MOUTH = tuple(range(60, 68))


def landmark_weights(
    kind: str = "deep3d", high: float = 20.0, device=None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Per-landmark weights ``[68]``: ``"deep3d"`` (official code: 28-30 and 60-67 get ``high``),
    ``"paper"`` (27-35 and 60-67) or ``"uniform"`` (all ones).

    Example:
        >>> w = landmark_weights()
        >>> int(w.sum())  # 57 ones + 11 * 20
        277
    """
    w = torch.ones(68, device=device, dtype=dtype)
    if kind == "uniform":
        return w
    if kind not in ("deep3d", "paper"):
        raise ValueError(f"landmark_weights: kind must be 'deep3d', 'paper' or 'uniform', got {kind!r}")
    nose = _NOSE_CODE if kind == "deep3d" else _NOSE_PAPER
    w[list(nose) + list(_INNER_MOUTH)] = high
    return w


DEEP3D_LANDMARK_WEIGHTS = landmark_weights("deep3d")


def landmark_loss(
    pred: Tensor,
    target: Tensor,
    weights: Tensor | None = None,
    scale: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Eq. 3: mean over images and landmarks of ``w_n ||q_n - q'_n||^2``.

    Args:
        pred: ``[B,N,2]`` projected model landmarks (pixels).
        target: ``[B,N,2]`` detected / ground-truth landmarks (pixels).
        weights: ``[N]`` per-landmark weights (``None`` = 1).
        scale: multiplies coordinate differences before squaring (``224 / image_size`` for the paper's units).
        valid: optional bool ``[B]``; rows that are False (e.g. placeholders from a mixed batch) are excluded.

    Returns:
        Scalar, in (scaled) pixels squared.

    Example:
        >>> p = torch.zeros(1, 2, 2); t = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
        >>> float(landmark_loss(p, t))  # (25 + 0) / 2
        12.5
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 2:
            raise ValueError(f"{name}: expected [B,N,2] pixels, got {getattr(x, 'shape', type(x))}")
    if pred.shape != target.shape:
        raise ValueError(f"target: expected the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    sq = (((pred - target) * scale) ** 2).sum(-1)  # [B,N]
    if weights is not None:
        if weights.shape != (pred.shape[1],):
            raise ValueError(f"weights: expected [{pred.shape[1]}], got {tuple(weights.shape)}")
        sq = sq * weights.to(sq)
    return masked_mean(sq, valid)

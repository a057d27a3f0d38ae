"""SIR's landmark term (sir.txt Eq. 10): ``L_land = 1/N || V_2d - V^_2d ||_2``.

The L2 norm of the whole ``N x 2`` landmark difference (not squared), divided by the number of landmarks
``N``, averaged over the batch rows. (Deep3DFace's Eq. 3, :func:`facezoo.losses.landmark_loss`, is a weighted
mean of *squared* distances instead.)
"""

from __future__ import annotations

from torch import Tensor

from facezoo.losses.masks import masked_mean

__all__ = ["landmark_norm_loss"]


def landmark_norm_loss(
    pred: Tensor, target: Tensor, valid: Tensor | None = None, scale: float = 1.0
) -> Tensor:
    """Eq. 10 per row, mean over the valid rows: ``[B,N,2], [B,N,2] -> scalar`` (pixels times ``scale``).

    Example:
        >>> import torch
        >>> p = torch.zeros(1, 2, 2); t = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
        >>> float(landmark_norm_loss(p, t))     # ||(3, 4, 0, 0)|| / 2
        2.5
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != 2:
            raise ValueError(f"{name}: expected [B,N,2] pixels, got {getattr(x, 'shape', type(x))}")
    if pred.shape != target.shape:
        raise ValueError(f"target: expected the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    diff = (pred - target) * scale
    per_row = diff.flatten(1).norm(dim=1) / pred.shape[1]
    return masked_mean(per_row, valid)

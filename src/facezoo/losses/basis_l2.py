"""Geometry-weighted coefficient errors: ``||U (a - â)||²`` per vertex, through the basis' Gram matrix.

MMFace (mmface.txt §3.2.2) replaces the plain parameter distance ``||a - â||²`` (Eq. 4), which weighs every
PCA component alike, by the error of the geometry they produce: ``E_id = ||S(a, β̂) - S(â, β̂)||² =
||U_id (a - â)||²`` (Eq. 5) and ``E_exp = ||U_exp (β - β̂)||²`` (Eq. 6). For a linear model the vertex error
of a coefficient difference ``δ`` is the quadratic form ``δᵀ G δ`` with ``G = Uᵀ U`` (``[K,K]``), so the loss
never builds the ``[V,3]`` meshes: ``K²`` work per row instead of ``3 V K`` (the BFM: 53k vertices x 199).

Normalisation ("the mean square error (MSE) between predict face geometry and ground truth"): the squared
vertex distance averaged over the vertices, in the squared unit of ``unit`` (``U`` is divided by it: e.g.
``unit = 1e-3`` mm gives µm², MMFace's BFM units).
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import masked_mean

__all__ = ["basis_gram", "basis_weighted_l2"]


def basis_gram(basis: Tensor, std: Tensor | None = None, unit: float = 1.0) -> Tensor:
    """``G = Uᵀ U / (V unit²)`` ``[K,K]`` (float64) of a basis ``[V,3,K]`` whose columns are scaled by
    ``std [K]`` when given (coefficients in units of std): the per-vertex mean squared displacement of
    ``U δ`` is ``δᵀ G δ``.

    Example:
        >>> U = torch.zeros(2, 3, 1); U[:, 0, 0] = 3.0          # both vertices move 3 along x
        >>> basis_gram(U)
        tensor([[9.]], dtype=torch.float64)
    """
    if not isinstance(basis, Tensor) or basis.ndim != 3 or basis.shape[1] != 3:
        raise ValueError(f"basis: expected [V,3,K], got {getattr(basis, 'shape', type(basis))}")
    u = basis.detach().double().reshape(-1, basis.shape[-1])
    if std is not None:
        if std.shape != (basis.shape[-1],):
            raise ValueError(f"std: expected [{basis.shape[-1]}], got {tuple(std.shape)}")
        u = u * std.detach().double().to(u.device)
    return (u.T @ u) / (basis.shape[0] * float(unit) ** 2)


def basis_weighted_l2(pred: Tensor, target: Tensor, gram: Tensor, valid: Tensor | None = None) -> Tensor:
    """Eq. 5 / 6: mean over rows of ``δᵀ G δ`` with ``δ = pred - target`` (``[B,K]``) and ``G`` of
    :func:`basis_gram` (the per-vertex mean squared geometry error of the coefficient difference).

    Example:
        >>> G = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
        >>> basis_weighted_l2(torch.tensor([[1.0, 1.0]]), torch.zeros(1, 2), G)
        tensor(5.)
    """
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(f"pred, target: expected two [B,K] tensors, got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}")  # fmt: skip
    if gram.shape != (pred.shape[1], pred.shape[1]):
        raise ValueError(f"gram: expected [{pred.shape[1]},{pred.shape[1]}], got {tuple(gram.shape)}")
    delta = pred - target.to(pred)
    per_row = torch.einsum("bk,kl,bl->b", delta, gram.to(pred), delta)
    return masked_mean(per_row, valid)

"""Voxel-wise binary cross-entropy of an occupancy volume (MMFace Eq. 3, VRN's loss).

``E_V = -Σ_{w,h,d} [V̂ log V + (1 - V̂) log(1 - V)]`` with ``V = sigmoid(logits)`` the network's volume and
``V̂`` the ground-truth occupancy (:func:`facezoo.geometry.voxelize.voxelize`). Computed from the logits
(``binary_cross_entropy_with_logits``: the same value, without the ``log 0`` of a saturated sigmoid) and
averaged over the voxels (the paper writes the sum; the mean keeps the loss independent of the resolution,
and MMFace's λ_V = 1e6 balances a per-voxel mean against shape errors in the BFM's µm units, see
:mod:`facezoo.methods.mmface`), then over the valid rows.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from facezoo.losses.masks import masked_mean

__all__ = ["volumetric_bce"]


def volumetric_bce(logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean voxel-wise BCE between ``sigmoid(logits)`` and ``target`` (Eq. 3).

    Args:
        logits: ``[B,D,H,W]`` (or any ``[B,...]``) pre-sigmoid volume.
        target: same shape, occupancy in [0, 1].
        valid: optional bool ``[B]``; False rows add nothing.

    Returns:
        Scalar (nats per voxel).

    Example:
        >>> import torch
        >>> t = torch.tensor([[1.0, 0.0]])
        >>> round(float(volumetric_bce(torch.zeros(1, 2), t)), 4)   # log 2 per voxel at p = 0.5
        0.6931
    """
    if not isinstance(logits, Tensor) or logits.ndim < 2:
        raise ValueError(f"logits: expected a tensor [B,...], got {getattr(logits, 'shape', type(logits))}")
    if not isinstance(target, Tensor) or target.shape != logits.shape:
        raise ValueError(
            f"target: expected the shape of logits {tuple(logits.shape)}, "
            f"got {getattr(target, 'shape', None)}"
        )
    per_voxel = F.binary_cross_entropy_with_logits(logits, target.to(logits), reduction="none")
    return masked_mean(per_voxel.flatten(1).mean(1), valid)

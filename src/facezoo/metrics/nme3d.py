"""MMFace's NME3D (Eq. 11): dense 3D vertex error over the 3D box diagonal, after a z-translation.

MMFace (Yi et al., CVPR 2019) Eq. 11: ``NME3D = 1 / (|S| · d_S) Σ_i || v_i - v̂_i ||₂`` over the corresponding
vertices of the ground-truth and the predicted mesh (same topology, e.g. a BFM crop on AFLW2000-3D), with
``d_S`` the diagonal of the 3D bounding box of the ground-truth face ("the diagonal size of the face region in
3D coordinate space"). "Due to the ambiguity caused by the weak perspective projection model ... we employ a
rigid translation along Z-axis to align each result within the ground truth range." The paper does not say
which translation; we use the least-squares one: the prediction is shifted along z so that its mean z equals
the ground truth's (the minimiser of the summed squared error; x and y are left as predicted). The norm is the
plain Euclidean distance (NME convention; the paper's typesetting is ambiguous about a square) and the box is
axis-aligned in the frame the meshes are given in.

This is NOT the Florence NME3D of PRN / 3DDFA (ICP alignment, nearest-point distances to a scan): see
:mod:`facezoo.metrics.nme3d_florence`.

Example:
    >>> gt = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.0, 4.0, 0.0]]])
    >>> nme3d(gt + torch.tensor([0.0, 0.0, 7.0]), gt)  # a pure z offset is aligned away
    tensor([0.])
"""

from __future__ import annotations

import torch

from facezoo.metrics._mean_std import MeanStdMetric

__all__ = ["NME3D", "nme3d", "box_diagonal"]


def box_diagonal(points: torch.Tensor) -> torch.Tensor:
    """Diagonal of the axis-aligned bounding box of ``[B,N,D]`` points → ``[B]``."""
    return torch.linalg.vector_norm(points.amax(dim=1) - points.amin(dim=1), dim=-1)


def _check(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != 3 or not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor [B,V,3], got {x.dtype} {tuple(x.shape)}")


def nme3d(
    preds: torch.Tensor,
    target: torch.Tensor,
    align_z: bool = True,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample MMFace NME3D (fraction of the 3D box diagonal).

    Args:
        preds: ``[B,V,3]`` predicted vertices (any metric unit, same as ``target``).
        target: ``[B,V,3]`` ground-truth vertices in vertex correspondence with ``preds``.
        align_z: shift each prediction along z to the ground truth's mean z first (the paper's alignment).
        mask: optional ``[V]`` bool, the vertices that count (e.g. a face-region mask); the box, the
            z-alignment and the mean all use only them.

    Returns:
        ``[B]`` NME3D; differentiable with respect to ``preds``.
    """
    _check("preds", preds)
    _check("target", target)
    if preds.shape != target.shape:
        raise ValueError(
            f"preds: expected the shape of target {tuple(target.shape)}, got {tuple(preds.shape)}"
        )
    target = target.to(device=preds.device, dtype=preds.dtype)
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != (preds.shape[1],):
            raise ValueError(f"mask: expected bool [{preds.shape[1]}], got {mask.dtype} {tuple(mask.shape)}")
        mask = mask.to(preds.device)
        preds, target = preds[:, mask], target[:, mask]
    if align_z:
        dz = target[..., 2].mean(dim=1) - preds[..., 2].mean(dim=1)  # [B]
        preds = preds + torch.stack([torch.zeros_like(dz), torch.zeros_like(dz), dz], -1)[:, None]
    err = torch.linalg.vector_norm(preds - target, dim=-1).mean(dim=1)
    return err / box_diagonal(target)


class NME3D(MeanStdMetric):
    """MMFace NME3D accumulated over a dataset (see the module docstring).

    ``update(preds [B,V,3], target [B,V,3])``; ``compute()`` → ``{"nme3d": mean, "nme3d_std": population
    std}`` over samples (fractions). Sum/count states reduced with ``sum``.
    """

    name = "nme3d"

    def __init__(self, align_z: bool = True, mask: torch.Tensor | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.align_z = align_z
        self.mask = mask

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.accumulate(nme3d(preds.detach(), target, self.align_z, self.mask))

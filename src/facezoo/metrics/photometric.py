"""Photometric l2,1 error over the visible face region (nonlinear 3DMM, Tran et al. 2019, Table 1).

"We report the averaged l2,1 reconstruction error over the face portion of each image" (Table 1: linear
0.1287 ... ours 0.0363), the l2,1 of their Eq. 4: the L2 norm of the RGB difference of each pixel, averaged
(l1) over the set of visible face pixels. Exact normalisation used here:

- images in [0, 1] RGB (facezoo's convention; the paper's numbers are consistent with it);
- per image: ``Σ_q m_q ||Î(q) - I(q)||₂ / Σ_q m_q`` over pixels ``q``, with ``m`` the face mask (bool, or
  float weights in [0, 1]: a soft mask weights both sums);
- dataset value: the mean over images of the per-image values (each image counts once, whatever its face
  size); images whose mask is empty are skipped by the metric (the functional form returns NaN for them).

Example:
    >>> pred = torch.zeros(1, 3, 2, 2)
    >>> target = torch.zeros(1, 3, 2, 2); target[0, :, 0, 0] = torch.tensor([0.3, 0.4, 0.0])
    >>> photometric_error(pred, target, torch.tensor([[[True, True], [False, False]]]))
    tensor([0.2500])
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["PhotometricError", "photometric_error"]


def photometric_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image masked l2,1 error.

    Args:
        pred: ``[B,3,H,W]`` rendered image in [0, 1].
        target: ``[B,3,H,W]`` input image in [0, 1].
        mask: ``[B,H,W]`` or ``[B,1,H,W]``, bool or float weights: the visible face pixels.

    Returns:
        ``[B]``; NaN where the mask is empty. Differentiable with respect to ``pred`` (zero gradient where
        the pixels agree exactly).
    """
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a float tensor [B,3,H,W], got {got}")
    if pred.shape != target.shape:
        raise ValueError(f"target: expected the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}")
    B, _, H, W = pred.shape
    if not isinstance(mask, torch.Tensor) or mask.shape not in ((B, H, W), (B, 1, H, W)):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask: expected [{B},{H},{W}] or [{B},1,{H},{W}], got {got}")
    m = mask.reshape(B, H, W).to(device=pred.device, dtype=pred.dtype)
    err = torch.linalg.vector_norm(pred - target.to(pred), dim=1)  # [B,H,W]
    return (err * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2))


class PhotometricError(Metric):
    """Mean over images of :func:`photometric_error` (images with an empty mask skipped).

    ``update(pred [B,3,H,W], target [B,3,H,W], mask [B,H,W])``; ``compute()`` → ``{"l21": mean}``.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        e = photometric_error(pred, target, mask).to(torch.float64)
        ok = ~torch.isnan(e)
        self.total += e[ok].sum()
        self.count += ok.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"l21": self.total / self.count}

"""SIR's weighted centre loss (sir.txt Eqs. 18-20; the centre loss of Wen et al., ECCV 2016).

``L_c = 1/2 mean_i ||x_i - c_{y_i}||^2`` pulls each identity's shape coefficients ``x_i = alpha_id`` to the
class centre ``c_{y_i}``. The centres are not learned by gradient descent; they follow Wen et al.'s update
rule, which SIR weights by how neutral and frontal each sample is:

* Eq. 19, the neutral-frontal confidence of a sample with Euler angles ``(a, b, g)`` and expression
  ``alpha_exp``:
  ``f = 1/8 (cos a + 1)(cos b + 1)(cos g + 1) exp(-lambda ||alpha_exp||_2)`` (1 for a frontal neutral face).
* Eq. 20, ``Delta c_j = sum_i d(y_i = j) f_i (c_j - x_i) / (1 + sum_i d(y_i = j))``, then
  ``c_j <- c_j - rate * Delta c_j`` (Wen et al.'s ``alpha``, 0.5).

So a class centre moves toward its frontal neutral samples and hardly toward profiles or grimaces, and the
centre loss pulls every sample of the identity toward the parameters of its frontal neutral face.

Where the paper is silent (our choices): Eq. 20 writes ``f`` outside the sum; as ``f`` is per sample we read
it as ``f_i`` inside the sum (for one sample per class both readings agree). ``L_c`` is averaged over the
batch rows (Wen et al. sum; a mean keeps ``epsilon_c`` independent of the batch size). Under DDP the numerator
and the count of Eq. 20 are summed over ranks before the update (:meth:`CentreBank.update`), so every rank
applies the update of the global batch and the centres (buffers) stay identical everywhere.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from facezoo.losses.masks import check_valid, masked_mean

__all__ = ["CentreBank", "centre_loss", "centre_update", "neutral_frontal_confidence"]


def neutral_frontal_confidence(angles: Tensor, exp: Tensor, lam: float = 0.1) -> Tensor:
    """Eq. 19: ``[N,3]`` Euler angles (rad) and ``[N,K]`` expression coefficients -> ``f [N]`` in ``(0, 1]``.

    Example:
        >>> neutral_frontal_confidence(torch.zeros(1, 3), torch.zeros(1, 4))
        tensor([1.])
        >>> profile = torch.tensor([[0.0, 3.14159265, 0.0]])        # yaw 180 degrees: f = 0
        >>> round(float(neutral_frontal_confidence(profile, torch.zeros(1, 4))), 6)
        0.0
    """
    if angles.ndim != 2 or angles.shape[1] != 3:
        raise ValueError(f"angles: expected [N,3] Euler angles (rad), got {tuple(angles.shape)}")
    if exp.ndim != 2 or exp.shape[0] != angles.shape[0]:
        raise ValueError(
            f"exp: expected [{angles.shape[0]},K] expression coefficients, got {tuple(exp.shape)}"
        )
    pose = (torch.cos(angles) + 1.0).prod(dim=1) / 8.0
    return pose * torch.exp(-lam * exp.norm(dim=1))


def _check_features(features: Tensor, labels: Tensor, centres: Tensor) -> Tensor:
    if features.ndim != 2 or centres.ndim != 2 or features.shape[1] != centres.shape[1]:
        raise ValueError(
            "features [N,D] and centres [C,D] must share D, got "
            f"{tuple(features.shape)}, {tuple(centres.shape)}"
        )
    labels = torch.as_tensor(labels, device=features.device).long()
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels: expected [{features.shape[0]}], got {tuple(labels.shape)}")
    return labels


def centre_loss(features: Tensor, labels: Tensor, centres: Tensor, valid: Tensor | None = None) -> Tensor:
    """``1/2 mean_i ||x_i - c_{y_i}||^2`` over the valid rows (gradients reach ``features`` only).

    Example:
        >>> centre_loss(torch.tensor([[3.0, 4.0]]), torch.tensor([0]), torch.zeros(1, 2))
        tensor(12.5000)
    """
    labels = _check_features(features, labels, centres)
    valid = check_valid(valid, features.shape[0])
    safe = labels.clamp(0, centres.shape[0] - 1) if valid is not None else labels
    if valid is None and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= centres.shape[0]):
        raise ValueError(f"labels: expected identities in [0, {centres.shape[0]}), got {labels.tolist()[:8]}")
    diff = features - centres.detach()[safe]
    return masked_mean(0.5 * (diff**2).sum(1), valid)


def centre_update(
    features: Tensor,
    labels: Tensor,
    centres: Tensor,
    weights: Tensor | None = None,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The two sums of Eq. 20: ``numerator [C,D] = sum_i d(y_i = j) f_i (c_j - x_i)`` and ``count [C] =
    sum_i d(y_i = j)`` (no gradients). ``Delta c = numerator / (1 + count)[:, None]``.

    Example:
        >>> num, cnt = centre_update(torch.tensor([[2.0], [4.0]]), torch.tensor([0, 0]), torch.zeros(1, 1),
        ...                          weights=torch.tensor([1.0, 0.5]))
        >>> num, cnt, num / (1 + cnt[:, None])
        (tensor([[-4.]]), tensor([2.]), tensor([[-1.3333]]))
    """
    labels = _check_features(features, labels, centres)
    x = features.detach().to(centres.dtype)
    w = torch.ones(len(x), dtype=x.dtype, device=x.device) if weights is None else weights.detach().to(x)
    valid = check_valid(valid, x.shape[0])
    if valid is not None:
        keep = valid.to(x.device)
        x, w, labels = x[keep], w[keep], labels[keep]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= centres.shape[0]):
        raise ValueError(f"labels: expected identities in [0, {centres.shape[0]}), got {labels.tolist()[:8]}")
    num = torch.zeros_like(centres)
    num.index_add_(0, labels, w[:, None] * (centres[labels] - x))
    count = torch.zeros(centres.shape[0], dtype=centres.dtype, device=centres.device)
    count.index_add_(0, labels, torch.ones_like(w))
    return num, count


class CentreBank(nn.Module):
    """Class centres as a buffer ``centres [num_classes, dim]`` (zeros at start, as Wen et al.), with the
    weighted update of Eq. 20, synchronised across DDP ranks.

    Example:
        >>> bank = CentreBank(num_classes=2, dim=1, rate=1.0)
        >>> bank.update(torch.tensor([[3.0]]), torch.tensor([1]))        # Delta c_1 = (0 - 3) / 2
        >>> bank.centres.flatten().tolist()
        [0.0, 1.5]
    """

    def __init__(self, num_classes: int, dim: int, rate: float = 0.5) -> None:
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"CentreBank: expected num_classes, dim >= 1, got {num_classes}, {dim}")
        self.register_buffer("centres", torch.zeros(num_classes, dim))
        self.rate = float(rate)

    def loss(self, features: Tensor, labels: Tensor, valid: Tensor | None = None) -> Tensor:
        """:func:`centre_loss` against the current centres."""
        return centre_loss(features, labels, self.centres, valid)

    @torch.no_grad()
    def update(
        self, features: Tensor, labels: Tensor, weights: Tensor | None = None, valid: Tensor | None = None
    ) -> None:
        """Eq. 20 with the sums over every rank's rows (one ``all_reduce`` when ``torch.distributed`` runs
        with more than one process), so the centres stay identical on every rank. Every rank must call it."""
        num, count = centre_update(features, labels, self.centres, weights, valid)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            packed = torch.cat([num, count[:, None]], dim=1)
            dist.all_reduce(packed)
            num, count = packed[:, :-1], packed[:, -1]
        self.centres -= self.rate * num / (1.0 + count)[:, None]

"""CosFace / large-margin cosine loss (Wang et al., CVPR 2018), SIR's softmax-like term ``L_sm`` (sir.txt Eq.
18: "We choose Cosloss [40] as our softmax-like loss").

``L = -1/N sum_i log( e^{s (cos(theta_{y_i}, i) - m)} / (e^{s (cos(theta_{y_i}, i) - m)} + sum_{j != y_i}
e^{s cos(theta_j, i)}) )`` with ``cos(theta_j, i) = <W_j, x_i> / (||W_j|| ||x_i||)``: features and class
weights are L2-normalised, the target logit loses the margin ``m``, all logits are scaled by ``s``. CosFace's
values: ``s = 64``, ``m = 0.35``. In SIR the features are the identity (shape) coefficients ``alpha_id``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facezoo.losses.masks import check_valid

__all__ = ["CosFace", "cosface_logits", "cosface_loss"]


def cosface_logits(
    features: Tensor, weight: Tensor, labels: Tensor, s: float = 64.0, m: float = 0.35
) -> Tensor:
    """``s (cos theta - m 1[j = y])``: ``features [N,D]``, ``weight [C,D]``, ``labels [N]`` -> ``[N,C]``.

    Example:
        >>> w = torch.eye(2); x = torch.tensor([[1.0, 0.0]])
        >>> cosface_logits(x, w, torch.tensor([0]), s=2.0, m=0.5)
        tensor([[1., 0.]])
    """
    if features.ndim != 2 or weight.ndim != 2 or features.shape[1] != weight.shape[1]:
        raise ValueError(
            "features [N,D] and weight [C,D] must share D, got "
            f"{tuple(features.shape)}, {tuple(weight.shape)}"
        )
    labels = torch.as_tensor(labels, device=features.device)
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels: expected [{features.shape[0]}], got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= weight.shape[0]):
        raise ValueError(
            f"labels: identity labels must lie in [0, {weight.shape[0]}) (num_identities), got "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    cos = F.normalize(features, dim=1, eps=1e-12) @ F.normalize(weight, dim=1, eps=1e-12).t()
    margin = F.one_hot(labels.long(), weight.shape[0]).to(cos) * m
    return s * (cos - margin)


def cosface_loss(
    features: Tensor,
    weight: Tensor,
    labels: Tensor,
    s: float = 64.0,
    m: float = 0.35,
    valid: Tensor | None = None,
) -> Tensor:
    """Mean CosFace cross-entropy over the ``valid`` rows (0, attached, with none).

    Example:
        >>> w = torch.eye(2); x = torch.tensor([[1.0, 0.0]])
        >>> round(float(cosface_loss(x, w, torch.tensor([0]), s=2.0, m=0.5)), 4)   # log(1 + e^-1)
        0.3133
    """
    valid = check_valid(valid, features.shape[0])
    if valid is not None:
        valid = valid.to(features.device)
        if not bool(valid.any()):
            return (features.sum() + weight.sum()) * 0.0
        features, labels = features[valid], torch.as_tensor(labels, device=features.device)[valid]
    return F.cross_entropy(cosface_logits(features, weight, labels, s, m), torch.as_tensor(labels).long())


class CosFace(nn.Module):
    """The CosFace classifier: learnable class weights ``weight [num_classes, dim]`` (Xavier-initialised).

    ``forward(features [N,D], labels [N], valid=None) -> scalar`` (:func:`cosface_loss`).

    Example:
        >>> head = CosFace(dim=4, num_classes=3)
        >>> float(head(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).detach()) > 0
        True
    """

    def __init__(self, dim: int, num_classes: int, s: float = 64.0, m: float = 0.35) -> None:
        super().__init__()
        if dim < 1 or num_classes < 2:
            raise ValueError(f"CosFace: expected dim >= 1 and num_classes >= 2, got {dim}, {num_classes}")
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = float(s), float(m)

    def forward(self, features: Tensor, labels: Tensor, valid: Tensor | None = None) -> Tensor:
        return cosface_loss(features, self.weight, labels, self.s, self.m, valid)

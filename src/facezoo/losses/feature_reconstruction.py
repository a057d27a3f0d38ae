"""Feature reconstruction (perceptual) loss, the nonlinear 3DMM's Eq. 5 (nonlinear3dmm.txt §3.2, after
Johnson et al. [17]).

``L_f = 1/|C| sum_{j in C} 1/(W_j H_j C_j) ||phi_j(I^) - phi_j(I)||_2^2`` over a subset ``C`` of the layers of
a network ``phi``. The paper does not name ``phi`` or ``C``; facezoo uses VGG-16 (:mod:`facezoo.nn.vgg`, with
weights from a user-given file: ImageNet ``vgg16-*.pth`` or VGG-Face) and ``C = relu1_2, relu2_2, relu3_3,
relu4_3`` (Johnson et al.'s style layers; their content layer relu2_2 is among them). The target image's
features carry no gradient; the network is frozen and stays in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from facezoo.losses.masks import masked_mean

DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def feature_reconstruction_loss(
    pred: Sequence[Tensor], target: Sequence[Tensor], valid: Tensor | None = None
) -> Tensor:
    """Eq. 5 for lists of activations ``[B,C_j,H_j,W_j]`` (one per layer, the same shapes in both): the mean
    over layers of the per-element mean squared difference, then the mean over the ``valid`` rows.

    Example:
        >>> a = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]
        >>> b = [torch.ones(1, 2, 2, 2), torch.full((1, 1, 1, 1), 3.0)]
        >>> float(feature_reconstruction_loss(a, b))  # (8/8 + 9/1) / 2
        5.0
    """
    if len(pred) != len(target) or not len(pred):
        raise ValueError(
            f"pred and target need the same non-zero number of layers, got {len(pred)}, {len(target)}"
        )
    per_row = 0.0
    for p, t in zip(pred, target):
        if p.shape != t.shape or p.ndim != 4:
            raise ValueError(
                f"layer activations must be equal [B,C,H,W], got {tuple(p.shape)}, {tuple(t.shape)}"
            )
        per_row = per_row + ((p - t) ** 2).flatten(1).mean(1)
    return masked_mean(per_row / len(pred), valid)


class FeatureReconstructionLoss(nn.Module):
    """Eq. 5 with a frozen feature network: ``forward(pred [B,3,H,W], target [B,3,H,W], valid=None)`` (RGB in
    [0, 1]) -> scalar.

    Args:
        network: a module with ``extract(x, layers) -> {name: activation}`` (:class:`facezoo.nn.VGG`).
        layers: the subset ``C``.

    Example:
        >>> from facezoo.nn import build
        >>> loss = FeatureReconstructionLoss(build("vgg16_features", width_divisor=16))
        >>> x = torch.rand(2, 3, 32, 32)
        >>> float(loss(x, x))
        0.0
    """

    def __init__(self, network: nn.Module, layers: Sequence[str] = DEFAULT_LAYERS) -> None:
        super().__init__()
        self.network = network.eval()
        self.layers = tuple(layers)
        for p in self.network.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureReconstructionLoss:
        super().train(False)  # a pretrained feature network never changes
        return self

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
        with torch.no_grad():
            t = self.network.extract(target, self.layers)
        p = self.network.extract(pred, self.layers)
        return feature_reconstruction_loss([p[k] for k in self.layers], [t[k] for k in self.layers], valid)

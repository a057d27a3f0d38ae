"""Deep3DFace's C-Net: per-coefficient confidences for multi-image shape aggregation (deep3d.txt §5).

"We take the features after the first residual block F_b1 (28x28x256) and after global pooling F_g (2048) of
R-Net as the input to C-Net. We apply three 3x3 convolution layers [with] 256 channels and stride 2, followed
by a global pooling layer on F_b1 to get F'_b1 (256). We then concatenate F'_b1 and F_g, and apply two
fully-connected layers with 512 and 80 neurons respectively. At last, we apply sigmoid ... C-Net has 3M
parameters". Training: "randomly initialize C-Net except for its last fully-connected layer which is
initialized to zero (so that we start from average pooling)".

Where the paper is silent: a ReLU follows each convolution and the 512-unit layer; no normalisation layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._blocks import strided_convs
from ._registry import register


@dataclass(frozen=True)
class ConfidenceNetConfig:
    """C-Net configuration.

    Attributes:
        stage1_channels: channels of R-Net's first-stage map (256 for ResNet-50).
        pooled_dim: size of R-Net's pooled features (2048 for ResNet-50).
        conv_channels: channels of each stride-2 3x3 convolution (three of 256).
        hidden: the first fully-connected layer (512).
        num_outputs: confidences, one per identity coefficient (80).
    """

    stage1_channels: int = 256
    pooled_dim: int = 2048
    conv_channels: tuple[int, ...] = (256, 256, 256)
    hidden: int = 512
    num_outputs: int = 80


class ConfidenceNet(nn.Module):
    """C-Net: ``forward(stage1 [B,C1,h,w], pooled [B,P]) -> confidences [B, num_outputs]`` in (0, 1).

    The last layer starts at zero, so every confidence starts at sigmoid(0) = 0.5 and confidence-weighted
    aggregation starts as the plain average.

    Example:
        >>> from facezoo.nn import build
        >>> rnet = build("resnet18", num_outputs=239, width=8)       # the paper: ResNet-50 at 224 px
        >>> config = ConfidenceNetConfig(stage1_channels=rnet.stage1_dim, pooled_dim=rnet.feature_dim)
        >>> cnet = ConfidenceNet(config)
        >>> _, stage1, pooled = rnet(torch.rand(2, 3, 64, 64), return_features=True)
        >>> c = cnet(stage1, pooled)
        >>> c.shape, bool((c == 0.5).all())       # zero-initialised last layer: plain averaging at the start
        (torch.Size([2, 80]), True)
    """

    def __init__(self, config: ConfidenceNetConfig = ConfidenceNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.Sequential(*strided_convs(config.stage1_channels, config.conv_channels))
        self.fc1 = nn.Linear(config.conv_channels[-1] + config.pooled_dim, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.num_outputs)
        for m in self.convs:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, stage1: Tensor, pooled: Tensor) -> Tensor:
        cfg = self.config
        if stage1.ndim != 4 or stage1.shape[1] != cfg.stage1_channels:
            raise ValueError(
                f"ConfidenceNet: stage1 must be [B,{cfg.stage1_channels},h,w], got {tuple(stage1.shape)}"
            )
        if pooled.shape != (stage1.shape[0], cfg.pooled_dim):
            raise ValueError(
                f"ConfidenceNet: pooled must be [{stage1.shape[0]},{cfg.pooled_dim}], "
                f"got {tuple(pooled.shape)}"
            )
        f = self.convs(stage1).mean(dim=(2, 3))
        h = torch.relu(self.fc1(torch.cat([f, pooled], dim=1)))
        return torch.sigmoid(self.fc2(h))


register(
    "deep3d_cnet",
    ConfidenceNetConfig(),
    ConfidenceNet,
    "Deep3DFace §5 (deep3d.txt), C-Net: 3x conv3x3/2 (256) + GAP, concat F_g, FC 512, FC 80, sigmoid",
)

"""IResNet (ArcFace, Deng et al. CVPR 2019; insightface's ``iresnet50/100``): a 512-d face embedding.

Used as the face-recognition feature extractor of Deep3DFace's perception-level loss (deep3d.txt §3.3: "we
extract the deep features of the images and compute the cosine distance"). The paper used an in-house FaceNet;
facezoo uses the widely released ArcFace IResNet instead, and its parameter names match insightface's
``backbone.pth`` (arcface_torch) so those weights load with :func:`facezoo.nn.load_backbone_weights`.

Architecture (insightface ``iresnet.py``): 3x3 stem conv (stride 1) + BN + PReLU; four stages of "improved"
basic blocks ``BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN`` + projection shortcut, each stage
starting with stride 2 (112 -> 7); then BN, flatten, dropout, FC to 512 and a BatchNorm1d whose scale is fixed
at 1. Input: aligned 112x112 RGB faces normalised as ``(x - 0.5) / 0.5`` for x in [0, 1] (insightface's
preprocessing; apply it before calling). Initialisation as insightface: conv weights N(0, 0.1), BN 1/0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._registry import register


@dataclass(frozen=True)
class IResNetConfig:
    """IResNet configuration.

    Attributes:
        layers: blocks per stage (iresnet50: 3,4,14,3; iresnet100: 3,13,30,3).
        width: channels of the stem / first stage (64); stage i has ``width * 2**i``.
        input_size: square input size (112); must be divisible by 16 (the FC reads the 1/16 map).
        num_features: embedding size (512).
        dropout: dropout before the FC (0 in arcface_torch's configs).
    """

    layers: tuple[int, int, int, int] = (3, 4, 14, 3)
    width: int = 64
    input_size: int = 112
    num_features: int = 512
    dropout: float = 0.0


class IBasicBlock(nn.Module):
    """insightface's pre-activation-style basic block (names match ``backbone.pth``)."""

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(nn.Module):
    """``forward(x [B,3,S,S]) -> embedding [B, num_features]`` with S = ``config.input_size`` (112).

    Example:
        >>> net = IResNet(IResNetConfig(layers=(1, 1, 1, 1), width=8, input_size=32))  # default: iresnet50
        >>> faces = torch.rand(2, 3, 32, 32)          # aligned crops in [0, 1]
        >>> net((faces - 0.5) / 0.5).shape          # embeddings, compared by cosine similarity
        torch.Size([2, 512])
    """

    def __init__(self, config: IResNetConfig = IResNetConfig()) -> None:
        super().__init__()
        if config.input_size % 16:
            raise ValueError(f"IResNetConfig.input_size must be divisible by 16, got {config.input_size}")
        self.config = config
        w = config.width
        self.conv1 = nn.Conv2d(3, w, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w, eps=1e-5)
        self.prelu = nn.PReLU(w)
        cin = w
        stages = []
        for i, n in enumerate(config.layers):
            planes = w * 2**i
            down = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes, eps=1e-5)
            )
            blocks = [IBasicBlock(cin, planes, 2, down)] + [IBasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(p=config.dropout)
        side = config.input_size // 16
        self.fc = nn.Linear(cin * side * side, config.num_features)
        self.features = nn.BatchNorm1d(config.num_features, eps=1e-5)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.features.weight.requires_grad_(False)  # insightface fixes the embedding BN's scale at 1

    def forward(self, x: Tensor) -> Tensor:
        s = self.config.input_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(f"IResNet expects x of shape [B,3,{s},{s}], got {tuple(x.shape)}")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


register("iresnet50", IResNetConfig(), IResNet, "ArcFace (Deng et al. 2019), insightface iresnet50")
register(
    "iresnet100",
    IResNetConfig(layers=(3, 13, 30, 3)),
    IResNet,
    "ArcFace (Deng et al. 2019), insightface iresnet100; Deep3DFace §3.3 perception loss",
)

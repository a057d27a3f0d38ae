"""ResNet-18/34/50 (He et al., CVPR 2016) with torchvision-compatible parameter names.

Deep3DFace (deep3d.txt §3) uses a ResNet-50 whose last fully-connected layer is replaced by 239 outputs
(R-Net); its C-Net (§5) reads the feature map after the first residual stage and the globally pooled features,
which ``forward(x, return_features=True)`` returns. Parameter names match torchvision's ``resnet18/34/50``
state dicts, so an ImageNet ``.pth`` the user already has loads with :func:`facezoo.nn.load_backbone_weights`
(``exclude=("fc.",)`` when the head size differs).

Design notes:

- Stride in the 3x3 convolution of the bottleneck ("ResNet v1.5", torchvision's choice). The TF-slim ResNet
  that Deep3DFace used puts stage strides at the *end* of each stage, which is why the paper quotes ``F_b1 in
  R^{28x28x256}`` for a 224x224 input; here the first-stage map is 56x56x256 (stride 4). C-Net ends in global
  pooling, so only its spatial size before pooling changes.
- Initialisation: Kaiming-normal (fan_out) convolutions, BN weight 1 / bias 0, torchvision's default Linear.
  ``zero_init_residual`` zeroes each block's last BN (Goyal et al. 2017); ``zero_init_fc`` zeroes the head, as
  Deep3DFace's released PyTorch code does for the 239-way coefficient layer so training starts at the mean
  face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from ._registry import register


@dataclass(frozen=True)
class ResNetConfig:
    """ResNet configuration.

    Attributes:
        block: ``"basic"`` (two 3x3 convs; ResNet-18/34) or ``"bottleneck"`` (1x1-3x3-1x1, expansion 4;
            ResNet-50).
        layers: residual blocks per stage (ResNet-18: 2,2,2,2; -34: 3,4,6,3; -50: 3,4,6,3 bottleneck).
        width: channels of the stem and of the first stage's 3x3 convs (64 in the paper); stage i uses
            ``width * 2**i``. Smaller widths give tiny test networks.
        in_channels: input image channels.
        num_outputs: size of the final fully-connected layer (1000 for ImageNet, 239 for Deep3DFace's R-Net);
            ``None`` drops the head and ``forward`` returns the pooled features.
        zero_init_residual: zero the last BN of every residual branch.
        zero_init_fc: zero the head's weight and bias.
    """

    block: Literal["basic", "bottleneck"] = "bottleneck"
    layers: tuple[int, int, int, int] = (3, 4, 6, 3)
    width: int = 64
    in_channels: int = 3
    num_outputs: int | None = 1000
    zero_init_residual: bool = False
    zero_init_fc: bool = False


class ResNetFeatures(NamedTuple):
    """``forward(x, return_features=True)``: ``out`` is the head output (or ``pooled`` without a head),
    ``stage1`` the first residual stage's map ``[B, 4*width (bottleneck) or width, H/4, W/4]`` and
    ``pooled`` the globally average-pooled last stage ``[B, 8*width*expansion]``."""

    out: Tensor
    stage1: Tensor
    pooled: Tensor


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs + identity (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, + identity (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet image encoder / regressor.

    Input ``[B, in_channels, H, W]`` (any H, W >= 32; 224x224 in the papers), normalised as the weights expect
    (ImageNet mean/std for torchvision weights). Output ``[B, num_outputs]``, or :class:`ResNetFeatures`
    with ``return_features=True``.

    Example:
        >>> net = ResNet(ResNetConfig(num_outputs=239))
        >>> out, stage1, pooled = net(torch.rand(2, 3, 224, 224), return_features=True)
        >>> out.shape, stage1.shape, pooled.shape
        (torch.Size([2, 239]), torch.Size([2, 256, 56, 56]), torch.Size([2, 2048]))
    """

    def __init__(self, config: ResNetConfig = ResNetConfig()) -> None:
        super().__init__()
        if config.block not in ("basic", "bottleneck"):
            raise ValueError(f"ResNetConfig.block must be 'basic' or 'bottleneck', got {config.block!r}")
        if len(config.layers) != 4 or min(config.layers) < 1:
            raise ValueError(f"ResNetConfig.layers must be 4 positive ints, got {config.layers}")
        self.config = config
        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        w = config.width
        self.conv1 = nn.Conv2d(config.in_channels, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = w
        stages = []
        for i, n in enumerate(config.layers):
            planes, stride = w * 2**i, 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != planes * block.expansion:
                down = nn.Sequential(
                    _conv1x1(cin, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion)
                )
            blocks = [block(cin, planes, stride, down)]
            cin = planes * block.expansion
            blocks += [block(cin, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = cin
        self.stage1_dim = w * block.expansion
        self.fc = nn.Linear(cin, config.num_outputs) if config.num_outputs else None
        self._init(config)

    def _init(self, config: ResNetConfig) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if config.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
        if config.zero_init_fc and self.fc is not None:
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | ResNetFeatures:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"ResNet expects x of shape [B,{self.config.in_channels},H,W], got {tuple(x.shape)}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        stage1 = self.layer1(x)
        x = self.layer4(self.layer3(self.layer2(stage1)))
        pooled = torch.flatten(self.avgpool(x), 1)
        out = self.fc(pooled) if self.fc is not None else pooled
        return ResNetFeatures(out, stage1, pooled) if return_features else out


def resnet(config: ResNetConfig) -> ResNet:
    """Factory used by the registry."""
    return ResNet(config)


register("resnet18", ResNetConfig(block="basic", layers=(2, 2, 2, 2)), resnet, "He et al. 2016, Table 1")
register("resnet34", ResNetConfig(block="basic", layers=(3, 4, 6, 3)), resnet, "He et al. 2016, Table 1")
register("resnet50", ResNetConfig(), resnet, "He et al. 2016, Table 1; Deep3DFace R-Net (deep3d.txt §3)")
register(
    "deep3d_rnet",
    ResNetConfig(num_outputs=239, zero_init_fc=True),
    resnet,
    "Deep3DFace §3 (deep3d.txt): ResNet-50 with a 239-way last FC (80 id, 64 exp, 80 tex, 9 light, 6 pose)",
)

"""Stacked hourglass network (Newell et al., ECCV 2016) as MMFace's volumetric sub-network (VMN).

MMFace (mmface.txt §3.2.1): "We stack two hourglass networks [24] with identical structure together to encode
the input to a feature space and then decode this feature representation to the volumetric domain VMN: I -> V
[18]", trained with a per-voxel binary cross-entropy on the sigmoid output (Eq. 3). The input is a 256x256
face crop (§4). Reference [18] is VRN (Jackson et al. 2017), which predicts the volume as the channels of a 2D
hourglass output: channel d of the output is depth slice d.

Blocks follow Newell et al.: the residual module is
BN-ReLU-conv1x1(C/2)-BN-ReLU-conv3x3(C/2)-BN-ReLU-conv1x1(C) plus a (1x1-projected where channels change)
skip; the stem is conv7x7/2 (64) - residual(128) - maxpool - residual(128) - residual(C); each hourglass
recurses ``depth`` times (max-pool down, nearest up, skip branch); between stacks the intermediate prediction
is mapped back by 1x1 convs and added (intermediate supervision).

Where the paper is silent (its supplementary is not available): ``features`` = 256, hourglass depth 4, one
residual module per position (Newell's defaults); the volume resolution is ``volume_size`` x ``volume_size`` x
``volume_depth``: the hourglasses run at 1/4 of the input (64x64 for 256x256) and each stack's logits are
bilinearly upsampled in-plane to ``volume_size``. MMFace reports ICP against volumes of 64, 128 and 192 and
uses 128 by default ("MMFace-ICP-128"), so the default is a 128^3 volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register


@dataclass(frozen=True)
class HourglassConfig:
    """Stacked-hourglass configuration.

    Attributes:
        in_channels: input channels (3).
        n_stacks: number of stacked hourglasses (2 in MMFace).
        features: channels inside the hourglasses (256).
        depth: recursion depth of each hourglass (4: 64 -> 4 for a 256 input).
        out_channels: output channels = volume depth slices.
        volume_size: in-plane size of the returned logits (``None`` keeps the 1/4-resolution maps).
    """

    in_channels: int = 3
    n_stacks: int = 2
    features: int = 256
    depth: int = 4
    out_channels: int = 128
    volume_size: int | None = 128


class Residual(nn.Module):
    """Newell's bottleneck residual module ``[B,cin,H,W] -> [B,cout,H,W]``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            nn.Conv2d(cin, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x) + self.skip(x)


class Hourglass(nn.Module):
    """One hourglass of recursion ``depth`` on ``[B,C,H,W]`` (H, W divisible by 2**depth) -> same shape."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.depth = depth
        self.up1 = Residual(channels, channels)
        self.low1 = Residual(channels, channels)
        self.low2 = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        up = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2))))
        return up + F.interpolate(low, scale_factor=2.0, mode="nearest")


class StackedHourglass(nn.Module):
    """``forward(x [B,in,H,W]) -> list of n_stacks logits [B, out_channels, S, S]`` (last = final prediction).

    H and W must be divisible by ``4 * 2**depth`` (64 for the defaults). S = ``volume_size`` or H/4.
    Apply ``sigmoid`` for voxel occupancy probabilities (MMFace Eq. 3).

    Example:
        >>> import torch
        >>> vmn = StackedHourglass(HourglassConfig(features=32, depth=2, out_channels=16, volume_size=32))
        >>> vmn(torch.rand(2, 3, 64, 64))[-1].shape        # the last stack's logits [B, D, H, W]
        torch.Size([2, 16, 32, 32])
    """

    def __init__(self, config: HourglassConfig = HourglassConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.features
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            Residual(64, 128),
            nn.MaxPool2d(2),
            Residual(128, 128),
            Residual(128, c),
        )
        self.hourglasses = nn.ModuleList(Hourglass(config.depth, c) for _ in range(config.n_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(c, c), nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            for _ in range(config.n_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, config.out_channels, 1) for _ in range(config.n_stacks))
        self.merge_features = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(config.n_stacks - 1))
        self.merge_preds = nn.ModuleList(
            nn.Conv2d(config.out_channels, c, 1) for _ in range(config.n_stacks - 1)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        cfg = self.config
        mult = 4 * 2**cfg.depth
        if x.ndim != 4 or x.shape[1] != cfg.in_channels or x.shape[2] % mult or x.shape[3] % mult:
            raise ValueError(
                f"StackedHourglass expects x of shape [B,{cfg.in_channels},H,W] with H, W divisible by "
                f"{mult}, "
                f"got {tuple(x.shape)}"
            )
        x = self.stem(x)
        outputs = []
        for i in range(cfg.n_stacks):
            y = self.features[i](self.hourglasses[i](x))
            pred = self.heads[i](y)
            if i < cfg.n_stacks - 1:
                x = x + self.merge_features[i](y) + self.merge_preds[i](pred)
            if cfg.volume_size is not None and pred.shape[-1] != cfg.volume_size:
                pred = F.interpolate(pred, size=(cfg.volume_size,) * 2, mode="bilinear", align_corners=False)
            outputs.append(pred)
        return outputs


register(
    "mmface_vmn",
    HourglassConfig(),
    StackedHourglass,
    "MMFace §3.2.1 (mmface.txt): 2 stacked hourglasses (Newell et al. 2016) regressing a VRN-style volume",
)
register(
    "hourglass",
    HourglassConfig(n_stacks=1, out_channels=68, volume_size=None),
    StackedHourglass,
    "Newell et al. 2016, stacked hourglass (here 1 stack, 68 heat maps)",
)

"""Unsup3D's confidence network (Wu et al., CVPR 2020), used by SIR for its confidence maps.

SIR (sir.txt §III-C): "We use the same ConfNet structure to generate confidence map as in [38]" ([38] =
Unsup3D); the maps weight the pixel loss (full resolution) and the VGG-16 perceptual loss (1/4 resolution),
§III-D. Unsup3D's ConfNet is an encoder-decoder on a 64x64 image: four stride-2 4x4 convs (GroupNorm,
LeakyReLU 0.2) and a 4x4 valid conv to a ``zdim`` code, transposed convs back up, and two Softplus heads: one
at 64x64 (pixel loss) and one at 16x16 (perceptual loss, the resolution of VGG-16 relu3_3 at 64x64 input).

Where SIR is silent: one confidence channel per head (Unsup3D predicts two, for the image and its mirror,
which SIR does not use); ``out_channels`` restores Unsup3D's 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ._registry import register


@dataclass(frozen=True)
class ConfNetConfig:
    """ConfNet configuration.

    Attributes:
        in_channels: input channels (3).
        out_channels: confidence channels per head (1; Unsup3D: 2).
        zdim: bottleneck code size (128).
        nf: base width (64).
    """

    in_channels: int = 3
    out_channels: int = 1
    zdim: int = 128
    nf: int = 64


class ConfNet(nn.Module):
    """``forward(x [B,in,64,64]) -> (sigma [B,out,64,64], sigma_perc [B,out,16,16])``, positive (Softplus).

    Example:
        >>> import torch
        >>> sigma, sigma_perc = ConfNet(ConfNetConfig(nf=16, zdim=16))(torch.rand(2, 3, 64, 64))
        >>> sigma.shape, sigma_perc.shape, bool((sigma > 0).all())
        (torch.Size([2, 1, 64, 64]), torch.Size([2, 1, 16, 16]), True)
    """

    def __init__(self, config: ConfNetConfig = ConfNetConfig()) -> None:
        super().__init__()
        self.config = config
        nf, z = config.nf, config.zdim
        act = nn.LeakyReLU(0.2, inplace=True)
        self.network = nn.Sequential(
            nn.Conv2d(config.in_channels, nf, 4, 2, 1, bias=False),
            nn.GroupNorm(16, nf),
            act,  # 64 -> 32
            nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False),
            nn.GroupNorm(32, nf * 2),
            act,  # 32 -> 16
            nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False),
            nn.GroupNorm(64, nf * 4),
            act,  # 16 -> 8
            nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False),
            act,  # 8 -> 4
            nn.Conv2d(nf * 8, z, 4, 1, 0, bias=False),
            nn.ReLU(inplace=True),  # 4 -> 1
            nn.ConvTranspose2d(z, nf * 8, 4, 1, 0, bias=False),
            nn.ReLU(inplace=True),  # 1 -> 4
            nn.ConvTranspose2d(nf * 8, nf * 4, 4, 2, 1, bias=False),
            nn.GroupNorm(64, nf * 4),
            nn.ReLU(True),  # 8
            nn.ConvTranspose2d(nf * 4, nf * 2, 4, 2, 1, bias=False),
            nn.GroupNorm(32, nf * 2),
            nn.ReLU(True),  # 16
        )
        self.out_net1 = nn.Sequential(
            nn.ConvTranspose2d(nf * 2, nf, 4, 2, 1, bias=False),
            nn.GroupNorm(16, nf),
            nn.ReLU(True),  # 32
            nn.ConvTranspose2d(nf, nf, 4, 2, 1, bias=False),
            nn.GroupNorm(16, nf),
            nn.ReLU(True),  # 64
            nn.Conv2d(nf, config.out_channels, 5, 1, 2, bias=False),
            nn.Softplus(),
        )
        self.out_net2 = nn.Sequential(
            nn.Conv2d(nf * 2, config.out_channels, 3, 1, 1, bias=False), nn.Softplus()
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.config.in_channels, 64, 64):
            raise ValueError(
                f"ConfNet expects x of shape [B,{self.config.in_channels},64,64], got {tuple(x.shape)}"
            )
        h = self.network(x)
        return self.out_net1(h), self.out_net2(h)


register(
    "sir_confnet", ConfNetConfig(), ConfNet, "SIR §III-C (sir.txt) using Unsup3D's ConfNet (Wu et al. 2020)"
)

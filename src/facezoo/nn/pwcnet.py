"""PWC-Net optical flow (Sun et al., CVPR 2018), the flow estimator of MVF-Net's view-alignment loss.

MVF-Net (mvfnet.txt §3.6.2, §4.2): "We use PWCNet as our differentiable optical flow estimator in the
self-supervised training step ... the weights of PWCNet is fixed"; the loss is the sum of squared flow
magnitudes between observed and rendered images. Gradients must reach the *images*, so every operation here is
differentiable in its inputs (the correlation is written with tensor ops; no custom CUDA kernel).

This is the full PWC-Net-DC architecture of NVlabs' released PyTorch model (``PWCDCNet``, md = 4), with its
parameter names, so NVlabs' ``pwc_net.pth.tar`` loads with :func:`facezoo.nn.load_backbone_weights`:

- 6-level feature pyramid, three 3x3 convs per level (16, 32, 64, 96, 128, 196 channels; the first strided),
  LeakyReLU 0.1;
- at each level l = 6..2: warp the second image's features by the upsampled flow from level l+1, cost volume
  (correlation over a 9x9 search window, mean over channels), DenseNet-style estimator (128, 128, 96, 64, 32
  channels, each output concatenated in front of its input), flow prediction, learned 2x upsampling of flow
  and features (transposed convs);
- a dilated-convolution context network (dilations 1, 2, 4, 8, 16, 1) refining the level-2 flow.

Conventions carried over from the reference so that its weights work: flows are predicted divided by 20, and
the warp at level l scales by 20 / 2**l; the warp uses ``grid_sample(align_corners=True)`` and zeroes pixels
whose sampling footprint leaves the image (mask < 0.9999); NVlabs' model was trained on BGR images in [0, 1]
(``bgr_weights=True`` swaps the channels of the RGB input internally). Inputs are resized to multiples of 64
and the level-2 flow is upsampled bilinearly to the input size and rescaled, as in NVlabs' ``script_pwc.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register


@dataclass(frozen=True)
class PWCNetConfig:
    """PWC-Net configuration.

    Attributes:
        max_displacement: correlation search radius ``md`` in pixels at every level (4 -> 81 channels).
        div_flow: scale of the predicted flows (20, as the reference).
        bgr_weights: the weights expect BGR input (true for NVlabs' checkpoint); inputs are always RGB.
    """

    max_displacement: int = 4
    div_flow: float = 20.0
    bgr_weights: bool = True


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.LeakyReLU(0.1)
    )


def _predict_flow(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, padding=1)


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1)


def correlation(f1: Tensor, f2: Tensor, max_displacement: int) -> Tensor:
    """Cost volume ``[B, (2d+1)^2, H, W]``: channel ``(dy+d)*(2d+1) + (dx+d)`` holds
    ``mean_c f1[:, c, y, x] * f2[:, c, y+dy, x+dx]`` (zero outside ``f2``), as FlowNet's correlation layer
    (kernel 1, strides 1) that PWC-Net uses. ``f1``, ``f2``: ``[B, C, H, W]``."""
    if f1.shape != f2.shape or f1.ndim != 4:
        raise ValueError(
            f"correlation: f1 and f2 must be [B,C,H,W] of equal shape, got {f1.shape} and {f2.shape}"
        )
    d = max_displacement
    h, w = f1.shape[-2:]
    f2p = F.pad(f2, (d, d, d, d))
    out = [
        (f1 * f2p[:, :, dy : dy + h, dx : dx + w]).mean(1)
        for dy in range(2 * d + 1)
        for dx in range(2 * d + 1)
    ]
    return torch.stack(out, 1)


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``x [B,C,H,W]`` by ``flow [B,2,H,W]`` (pixels, (dx, dy)): ``out(p) = x(p + flow(p))``,
    bilinear, zero (and masked) where the sample leaves the image; NVlabs' ``PWCDCNet.warp``."""
    b, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=x.device, dtype=x.dtype),
        torch.arange(w, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    ones = torch.ones_like(x[:, :1])
    mask = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out * (mask >= 0.9999).to(x.dtype)


class PWCNet(nn.Module):
    """``forward(image1, image2) -> flow [B,2,H,W]`` in pixels such that ``image2(p + flow(p)) ~ image1(p)``.

    ``image1``, ``image2``: ``[B,3,H,W]`` RGB in [0, 1], any size (internally resized to multiples of 64).
    :meth:`forward_pyramid` returns the raw multi-scale predictions (levels 2..6, divided by ``div_flow``).

    Example:
        >>> rendered, observed = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
        >>> flow = PWCNet()(rendered, observed)
        >>> flow.shape
        torch.Size([1, 2, 64, 64])
        >>> loss = flow.square().sum(1).mean()          # MVF-Net's alignment loss (per direction)
    """

    def __init__(self, config: PWCNetConfig = PWCNetConfig()) -> None:
        super().__init__()
        self.config = config
        md = config.max_displacement
        chans = (3, 16, 32, 64, 96, 128, 196)
        for lvl in range(1, 7):  # NVlabs names: convNa (strided), convNaa, convNb; level 6 is "6aa, 6a, 6b"
            cin, c = chans[lvl - 1], chans[lvl]
            names = (
                ("conv6aa", "conv6a", "conv6b")
                if lvl == 6
                else (f"conv{lvl}a", f"conv{lvl}aa", f"conv{lvl}b")
            )
            setattr(self, names[0], _conv(cin, c, stride=2))
            setattr(self, names[1], _conv(c, c))
            setattr(self, names[2], _conv(c, c))
        nd = (2 * md + 1) ** 2
        widths = (128, 128, 96, 64, 32)
        for lvl in range(6, 1, -1):
            od = nd if lvl == 6 else nd + chans[lvl] + 4
            for k, c in enumerate(widths):
                setattr(self, f"conv{lvl}_{k}", _conv(od + sum(widths[:k]), c))
            final = od + sum(widths)
            setattr(self, f"predict_flow{lvl}", _predict_flow(final))
            if lvl > 2:
                setattr(self, f"deconv{lvl}", _deconv(2, 2))
                setattr(self, f"upfeat{lvl}", _deconv(final, 2))
        final2 = nd + chans[2] + 4 + sum(widths)
        self.dc_conv1 = _conv(final2, 128)
        self.dc_conv2 = _conv(128, 128, dilation=2)
        self.dc_conv3 = _conv(128, 128, dilation=4)
        self.dc_conv4 = _conv(128, 96, dilation=8)
        self.dc_conv5 = _conv(96, 64, dilation=16)
        self.dc_conv6 = _conv(64, 32)
        self.dc_conv7 = _predict_flow(32)
        for m in self.modules():  # NVlabs' initialisation
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _pyramid(self, im: Tensor) -> list[Tensor]:
        feats, x = [], im
        for lvl in range(1, 7):
            names = (
                ("conv6aa", "conv6a", "conv6b")
                if lvl == 6
                else (f"conv{lvl}a", f"conv{lvl}aa", f"conv{lvl}b")
            )
            for n in names:
                x = getattr(self, n)(x)
            feats.append(x)
        return feats

    def _dense(self, lvl: int, x: Tensor) -> Tensor:
        for k in range(5):
            x = torch.cat([getattr(self, f"conv{lvl}_{k}")(x), x], dim=1)
        return x

    def forward_pyramid(self, image1: Tensor, image2: Tensor) -> list[Tensor]:
        """Raw flows ``[flow2, flow3, flow4, flow5, flow6]`` (level l at 1/2**l of the input, divided by
        ``div_flow``) for inputs whose H, W are multiples of 64, RGB in [0, 1]."""
        if self.config.bgr_weights:
            image1, image2 = image1.flip(1), image2.flip(1)
        md, div = self.config.max_displacement, self.config.div_flow
        c1, c2 = self._pyramid(image1), self._pyramid(image2)
        flows: list[Tensor] = []
        up_flow = up_feat = None
        for lvl in range(6, 1, -1):
            f1, f2 = c1[lvl - 1], c2[lvl - 1]
            if lvl == 6:
                x = F.leaky_relu(correlation(f1, f2, md), 0.1)
            else:
                corr = F.leaky_relu(correlation(f1, warp(f2, up_flow * (div / 2**lvl)), md), 0.1)
                x = torch.cat([corr, f1, up_flow, up_feat], dim=1)
            x = self._dense(lvl, x)
            flow = getattr(self, f"predict_flow{lvl}")(x)
            if lvl > 2:
                up_flow, up_feat = getattr(self, f"deconv{lvl}")(flow), getattr(self, f"upfeat{lvl}")(x)
            else:
                ctx = self.dc_conv4(self.dc_conv3(self.dc_conv2(self.dc_conv1(x))))
                flow = flow + self.dc_conv7(self.dc_conv6(self.dc_conv5(ctx)))
            flows.insert(0, flow)
        return flows

    def forward(self, image1: Tensor, image2: Tensor) -> Tensor:
        if image1.ndim != 4 or image1.shape[1] != 3 or image1.shape != image2.shape:
            raise ValueError(
                f"PWCNet expects two [B,3,H,W] images of equal shape, got {tuple(image1.shape)} and "
                f"{tuple(image2.shape)}"
            )
        h, w = image1.shape[-2:]
        h64, w64 = max(64, -(-h // 64) * 64), max(64, -(-w // 64) * 64)
        if (h64, w64) != (h, w):
            image1 = F.interpolate(image1, size=(h64, w64), mode="bilinear", align_corners=False)
            image2 = F.interpolate(image2, size=(h64, w64), mode="bilinear", align_corners=False)
        flow2 = self.forward_pyramid(image1, image2)[0] * self.config.div_flow  # pixels of the resized input
        flow = F.interpolate(flow2, size=(h, w), mode="bilinear", align_corners=False)
        scale = torch.tensor([w / w64, h / h64], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
        return flow * scale


register(
    "pwcnet",
    PWCNetConfig(),
    PWCNet,
    "PWC-Net (Sun et al. 2018), NVlabs PWCDCNet; MVF-Net §4.2 flow estimator",
)

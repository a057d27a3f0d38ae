"""Nonlinear 3DMM networks (Tran, Liu & Liu, CVPR 2019; nonlinear3dmm.txt): encoder E and UV decoders.

The paper's model (§3.2-§3.4): an encoder E estimates the shape and albedo latent codes f_S, f_A (l_S = l_A =
320), the projection M and the SH lighting L; decoders map the codes to a UV shape map S_uv (3D position per
texel) and a UV albedo map A_uv of U x V = 192 x 224 texels (§4). "Each shape or albedo decoder consist[s] of
two branches to reconstruct the true element and its proxy" (Fig. 2): ``S = S_proxy + dS``, with strong
regularisers on the proxy and an L1 on the residual (§3.3, Eq. 13-14). Each decoder is global-local (§3.4,
Fig. 3): "a global pathway ... built from fractional strided convolution layers with five up-sampling steps
... a local pathway with four small sub-networks generating details of different facial parts, including eyes,
nose and mouth ... with only three up-sampling steps"; the local outputs are merged into one tensor "with the
zero padding operation", overlaps fused by max-pooling, then concatenated with the global feature of the same
resolution, and "successive convolution layers ... generate the final albedo/shape".

Where the paper is silent (choices, following the authors' earlier nonlinear 3DMM [44, 45] where possible):

- Encoder: the DR-GAN / CASIA-Net-style trunk of [44] (3x3 convs, BN + ELU, four stride-2 steps: 32-64 |
  64-64-128 | 128-96-192 | 192-128-256 | 256-160-(l_S + l_A + 64)), global average pooling; the first l_S and
  next l_A pooled channels are f_S and f_A; the last 64 feed two FC layers for M (2x4 = 8 values) and L (27 =
  9 SH x RGB). Input 128x128 by default (any multiple of 16).
- Decoder global pathway: FC to ``channels[0] x H/32 x W/32``, then five steps of 4x4 stride-2 transposed conv
  + 3x3 conv (BN + ELU) with widths ``channels``; local sub-network: FC to ``local_channels[0] x h/8 x w/8``
  and three such steps; overlaps are fused by an element-wise max over the parts present at a texel (texels no
  part covers are 0), which is zero padding plus max-pooling without letting padding zeros clip negative
  features.
- Both branches (proxy and residual) are full global-local decoders; the residual's last layer starts at zero
  so that S = S_proxy at initialisation. Output activation: ``tanh`` for albedo (colours in [-1, 1], as [44]),
  none for shape (a normalised position map).
- Default part boxes (eye, eye, nose, mouth) in texels of a 192x224 (H x W) UV map with the face centred and
  the eyes at ~40% of the height. They depend on the UV layout: set ``local_boxes`` for yours
  (:class:`facezoo.methods.NonlinearFace3DMM` sets them from the model's landmarks in UV,
  :func:`facezoo.morphable.uv.uv_part_boxes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register


def _cbe(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ELU(inplace=True)
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    """One up-sampling step: 4x4 stride-2 transposed conv + 3x3 conv, BN + ELU."""
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ELU(inplace=True),
        _cbe(cout, cout),
    )  # fmt: skip


@dataclass(frozen=True)
class N3DMMEncoderConfig:
    """Encoder configuration.

    Attributes:
        input_size: square input side (128), a multiple of 16.
        channels: trunk widths before the code layer (see module docstring).
        shape_dim, albedo_dim: l_S, l_A (320).
        n_pose: projection parameters (8: a 2x4 weak-perspective matrix M).
        n_light: lighting parameters (27).
    """

    input_size: int = 128
    channels: tuple[int, ...] = (32, 64, 64, 64, 128, 128, 96, 192, 192, 128, 256, 256, 160)
    shape_dim: int = 320
    albedo_dim: int = 320
    n_pose: int = 8
    n_light: int = 27


class N3DMMEncoder(nn.Module):
    """``forward(image [B,3,S,S]) -> {"id": [B,l_S], "tex": [B,l_A], "pose": [B,8], "light": [B,27]}``: the
    shape latent f_S, the albedo latent f_A, the projection M (2x4, row-major) and the SH lighting L.

    Example:
        >>> codes = N3DMMEncoder()(torch.rand(2, 3, 128, 128))
    """

    # indices in ``channels`` of the convolutions that halve the resolution (Conv21, Conv31, Conv41, Conv51)
    _STRIDED = (2, 5, 8, 11)

    def __init__(self, config: N3DMMEncoderConfig = N3DMMEncoderConfig()) -> None:
        super().__init__()
        if config.input_size % 16:
            raise ValueError(
                f"N3DMMEncoderConfig.input_size must be a multiple of 16, got {config.input_size}"
            )
        if len(config.channels) != 13:
            raise ValueError(f"N3DMMEncoderConfig.channels must have 13 widths, got {len(config.channels)}")
        self.config = config
        layers, cin = [], 3
        for i, c in enumerate(config.channels):
            layers.append(_cbe(cin, c, 2 if i in self._STRIDED else 1))
            cin = c
        code = config.shape_dim + config.albedo_dim + 64
        layers.append(_cbe(cin, code))
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.pose = nn.Linear(64, config.n_pose)
        self.light = nn.Linear(64, config.n_light)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        s = self.config.input_size
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, s, s):
            raise ValueError(f"N3DMMEncoder expects image [B,3,{s},{s}], got {tuple(image.shape)}")
        cfg = self.config
        f_s, f_a, rest = self.trunk(image).split([cfg.shape_dim, cfg.albedo_dim, 64], dim=1)
        return {"id": f_s, "tex": f_a, "pose": self.pose(rest), "light": self.light(rest)}


_DEFAULT_BOXES: tuple[tuple[int, int, int, int], ...] = (
    (56, 40, 48, 64),  # left eye region: top, left, height, width (texels of a 192 x 224 map)
    (56, 120, 48, 64),  # right eye region
    (80, 80, 64, 64),  # nose
    (128, 64, 48, 96),  # mouth
)


@dataclass(frozen=True)
class GlobalLocalConfig:
    """Global-local UV decoder configuration.

    Attributes:
        latent_dim: input code size (l_S or l_A = 320).
        out_channels: 3 (xyz or RGB).
        uv_size: (H, W) of the UV map (192, 224). The global pathway starts at ``ceil(H/32) x ceil(W/32)``
            and its output is cropped to ``H x W`` (top-left), so any size works (e.g. 32 x 40 in tests).
        channels: global widths: ``channels[0]`` at H/32, then one per up-sampling step (6 values).
        local_channels: local widths: ``[0]`` at h/8, then one per step (4 values).
        local_boxes: (top, left, height, width) per part in texels; height/width multiples of 8.
            Empty = global pathway only.
        fusion_channels: width of the convolutions after the pathways are concatenated.
        activation: ``"tanh"`` or ``"none"`` on the output.
    """

    latent_dim: int = 320
    out_channels: int = 3
    uv_size: tuple[int, int] = (192, 224)
    channels: tuple[int, ...] = (320, 256, 192, 128, 64, 32)
    local_channels: tuple[int, ...] = (128, 64, 32, 32)
    local_boxes: tuple[tuple[int, int, int, int], ...] = _DEFAULT_BOXES
    fusion_channels: int = 32
    activation: Literal["tanh", "none"] = "none"


class GlobalLocalDecoder(nn.Module):
    """``forward(code [B,latent_dim]) -> uv map [B,out_channels,H,W]`` (one pathway pair of Fig. 3)."""

    def __init__(self, config: GlobalLocalConfig) -> None:
        super().__init__()
        h, w = config.uv_size
        if h < 8 or w < 8:
            raise ValueError(f"GlobalLocalConfig.uv_size must be at least 8 x 8, got {config.uv_size}")
        if len(config.channels) != 6 or len(config.local_channels) != 4:
            raise ValueError("GlobalLocalConfig: channels needs 6 widths and local_channels 4")
        for box in config.local_boxes:
            t, l, bh, bw = box
            if bh % 8 or bw % 8 or t < 0 or l < 0 or t + bh > h or l + bw > w:
                raise ValueError(
                    f"GlobalLocalConfig.local_boxes: {box} must lie in {config.uv_size} with sides % 8 == 0"
                )
        self.config = config
        c = config.channels
        self._grid = (-(-h // 32), -(-w // 32))  # ceil: sizes that are not multiples of 32 are cropped
        self.global_fc = nn.Linear(config.latent_dim, c[0] * self._grid[0] * self._grid[1])
        self.global_head = nn.Sequential(nn.BatchNorm2d(c[0]), nn.ELU(inplace=True), _cbe(c[0], c[0]))
        self.global_up = nn.Sequential(*[_up(c[i], c[i + 1]) for i in range(5)])
        lc = config.local_channels
        self.local_fc = nn.ModuleList(
            nn.Linear(config.latent_dim, lc[0] * (bh // 8) * (bw // 8)) for _, _, bh, bw in config.local_boxes
        )
        self.local_up = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(lc[0]), nn.ELU(inplace=True), *[_up(lc[i], lc[i + 1]) for i in range(3)]
            )
            for _ in config.local_boxes
        )
        n_local = lc[-1] if config.local_boxes else 0
        fc = config.fusion_channels
        self.fusion = nn.Sequential(
            _cbe(c[-1] + n_local, fc), _cbe(fc, fc), nn.Conv2d(fc, config.out_channels, 3, 1, 1)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight)
        nn.init.normal_(self.fusion[-1].weight, std=1e-3)
        nn.init.zeros_(self.fusion[-1].bias)

    def _local(self, code: Tensor) -> Tensor:
        cfg = self.config
        h, w = cfg.uv_size
        canvas = code.new_full((code.shape[0], cfg.local_channels[-1], h, w), float("-inf"))
        for (t, l, bh, bw), fc, up in zip(cfg.local_boxes, self.local_fc, self.local_up):
            part = up(fc(code).view(code.shape[0], -1, bh // 8, bw // 8))
            # zero padding into the canvas, max-pooling fusion of overlapping parts
            padded = F.pad(part, (l, w - l - bw, t, h - t - bh), value=float("-inf"))
            canvas = torch.maximum(canvas, padded)
        return torch.where(torch.isinf(canvas), torch.zeros_like(canvas), canvas)

    def forward(self, code: Tensor) -> Tensor:
        cfg = self.config
        if code.ndim != 2 or code.shape[1] != cfg.latent_dim:
            raise ValueError(f"GlobalLocalDecoder expects code [B,{cfg.latent_dim}], got {tuple(code.shape)}")
        h, w = cfg.uv_size
        g = self.global_fc(code).view(code.shape[0], cfg.channels[0], *self._grid)
        g = self.global_up(self.global_head(g))[..., :h, :w]
        feats = torch.cat([g, self._local(code)], dim=1) if cfg.local_boxes else g
        out = self.fusion(feats)
        return torch.tanh(out) if cfg.activation == "tanh" else out


@dataclass(frozen=True)
class ProxyDecoderConfig:
    """Proxy + residual UV decoder configuration (one per shape / albedo).

    Fields as :class:`GlobalLocalConfig`.
    """

    latent_dim: int = 320
    out_channels: int = 3
    uv_size: tuple[int, int] = (192, 224)
    channels: tuple[int, ...] = (320, 256, 192, 128, 64, 32)
    local_channels: tuple[int, ...] = (128, 64, 32, 32)
    local_boxes: tuple[tuple[int, int, int, int], ...] = field(default=_DEFAULT_BOXES)
    fusion_channels: int = 32
    activation: Literal["tanh", "none"] = "none"


class ProxyResidualDecoder(nn.Module):
    """``forward(code [B,l]) -> {"proxy": [B,3,H,W], "residual": [B,3,H,W], "full": proxy + residual}``.

    The activation (``tanh`` for albedo) applies to ``proxy`` and to ``full``; ``residual`` is their
    difference, so that the paper's L_res = ||full - proxy||_1 is ``residual.abs()`` (Eq. 14).

    Example:
        >>> dec = ProxyResidualDecoder(ProxyDecoderConfig(activation="tanh"))     # albedo decoder
        >>> out = dec(torch.randn(2, 320)); out["full"].shape
        torch.Size([2, 3, 192, 224])
        >>> torch.allclose(out["residual"], out["full"] - out["proxy"])
        True
    """

    def __init__(self, config: ProxyDecoderConfig = ProxyDecoderConfig()) -> None:
        super().__init__()
        self.config = config
        base = GlobalLocalConfig(
            latent_dim=config.latent_dim, out_channels=config.out_channels, uv_size=config.uv_size,
            channels=config.channels, local_channels=config.local_channels, local_boxes=config.local_boxes,
            fusion_channels=config.fusion_channels, activation="none",
        )  # fmt: skip
        self.proxy = GlobalLocalDecoder(base)
        self.residual = GlobalLocalDecoder(base)
        nn.init.zeros_(self.residual.fusion[-1].weight)  # S = S_proxy at the start
        nn.init.normal_(self.proxy.fusion[-1].weight, std=0.02)

    def forward(self, code: Tensor) -> dict[str, Tensor]:
        p, r = self.proxy(code), self.residual(code)
        full = p + r
        if self.config.activation == "tanh":
            p, full = torch.tanh(p), torch.tanh(full)
        return {"proxy": p, "residual": full - p, "full": full}


_SRC = "Nonlinear 3DMM (Tran, Liu & Liu 2019; nonlinear3dmm.txt)"
register(
    "nonlinear3dmm_encoder", N3DMMEncoderConfig(), N3DMMEncoder, f"{_SRC} §3.2 encoder E (layers of [44])"
)
register(
    "nonlinear3dmm_shape_decoder", ProxyDecoderConfig(), ProxyResidualDecoder, f"{_SRC} §3.3-3.4, Fig. 2-3"
)
register(
    "nonlinear3dmm_albedo_decoder",
    ProxyDecoderConfig(activation="tanh"),
    ProxyResidualDecoder,
    f"{_SRC} §3.3-3.4",
)
register(
    "sir_albedo_decoder",
    GlobalLocalConfig(latent_dim=512, uv_size=(256, 256), local_boxes=(), activation="tanh"),
    GlobalLocalDecoder,
    "SIR §III-C (sir.txt): transposed-conv decoder from the 512-d albedo code to a 256x256 UV albedo map",
)

"""MVF-Net's multi-view encoder/regressor (Wu et al., CVPR 2019; mvfnet.txt §3.3, Fig. 2).

"Each input image is sent through several convolutional layers (borrowed from VGG-Face) and pooled to a
512-dimensional feature vector. Then a set of pose parameters P = {f, alpha, beta, gamma, t_x, t_y} is
regressed for each view via two fully-connected layers. The three 512-dimensional feature vectors are
concatenated together to regress the 228-dimensional 3DMM parameters X = {x_id, x_exp} (199 for identity and
29 for expression) using another two fully-connected layers ... The networks to extract features and regress
pose parameters for the three views have shared weights." Inputs are 224x224 crops (§4.2).

Where the paper is silent we follow the released (test-only) code, with its parameter names so that its
``net.pth`` maps onto this module by name:

* ``encoder="official"`` (default): the released ``VggEncoder.layer1``, seven 3x3 convolutions with
  BatchNorm + ReLU (64, M, 128, M, 256, 256, M, 512, M, 512, 512, M; ``M`` = 2x2 max-pool, ``ceil_mode``),
  named ``layer1.conv{k}`` / ``layer1.bn{k}``, then global average pooling to 512; RGB in [0, 1] without
  normalisation (the released ``to_tensor`` input).
* ``encoder="vgg"``: VGG-16's 13 convolutions (VGG-Face's layout, ``encoder.features.*``), so that VGG-Face
  weights load with ``load_backbone_weights(net.encoder, path, exclude=("classifier.",))``.
* Heads: ``fc_pose = fc3 (512 -> hidden) , ReLU, fc4 (hidden -> n_pose)`` per view and ``fc_3dmm = fc1
  (512 V -> hidden V), ReLU, fc2 (-> n_id + n_exp)`` (released: hidden 256, so 768 for three views). The
  released ``fc4`` has 7 outputs (300W-LP's ``Pose_Para`` layout, our reading); the paper's pose has 6
  (``n_pose = 6``: f, pitch, yaw, roll, t_x, t_y), which the method decodes
  (:mod:`facezoo.methods.mvfnet_pose`). Final layers start near zero (released ``reset_params``: N(0, 1e-4)),
  so training starts at the mean face and the method's reference pose.

The number of views is a config field (``param_head`` reads ``V`` concatenated features); the view order is
the caller's (facezoo's datamodules: frontal, left, right, which is also the released code's order).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register
from .params import ShapeSizes
from .vgg import VGG, VGGConfig

#: the released encoder's plan (conv widths, "M" = 2x2 max-pool with ceil_mode).
OFFICIAL_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, "M", 512, 512, "M")


@dataclass(frozen=True)
class MVFNetConfig(ShapeSizes):
    """MVF-Net configuration (``n_id``, ``n_exp``: :class:`~facezoo.nn.params.ShapeSizes`, 199 + 29).

    Attributes:
        n_views: number of views (3).
        encoder: ``"official"`` (the released 7-conv BN encoder) or ``"vgg"`` (VGG-Face / VGG-16 convs).
        vgg_depth: depth of the ``"vgg"`` encoder (16 = VGG-Face).
        width_divisor: divide the encoder widths (1 = the paper; >1 for tiny tests).
        input_norm: VGG input normalisation (``"vggface"`` for VGG-Face weights; ``"vgg"`` encoder only).
        hidden: per-view width of the hidden FC layers (released: 256; the 3DMM head uses ``hidden * V``).
        n_pose: per-view pose size (6: f, pitch, yaw, roll, t_x, t_y).
    """

    n_views: int = 3
    encoder: Literal["official", "vgg"] = "official"
    vgg_depth: int = 16
    width_divisor: int = 1
    input_norm: Literal["imagenet", "vggface", "none"] = "vggface"
    hidden: int = 256
    n_pose: int = 6


def official_encoder(width_divisor: int = 1) -> nn.Sequential:
    """The released ``VggEncoder.layer1`` (module docstring) with widths divided by ``width_divisor``."""
    layers: list[tuple[str, nn.Module]] = []
    cin, k, p = 3, 0, 0
    for item in OFFICIAL_PLAN:
        if item == "M":
            p += 1
            layers.append((f"pool{p}", nn.MaxPool2d(2, 2, ceil_mode=True)))
            continue
        k += 1
        c = max(1, int(item) // width_divisor)
        layers += [(f"conv{k}", nn.Conv2d(cin, c, 3, 1, 1)), (f"bn{k}", nn.BatchNorm2d(c))]
        layers.append((f"relu{k}", nn.ReLU(inplace=True)))
        cin = c
    return nn.Sequential(OrderedDict(layers))


class MVFNet(nn.Module):
    """``forward(images [B,V,3,H,W] in [0,1]) -> {"id": [B,n_id], "exp": [B,n_exp], "pose": [B,V,n_pose]}``.

    Example:
        >>> net = MVFNet(MVFNetConfig(width_divisor=16))      # the paper's widths: width_divisor=1
        >>> out = net(torch.rand(2, 3, 3, 64, 64))
        >>> tuple(out["id"].shape), tuple(out["pose"].shape)
        ((2, 199), (2, 3, 6))
    """

    def __init__(self, config: MVFNetConfig = MVFNetConfig()) -> None:
        super().__init__()
        if config.encoder not in ("official", "vgg"):
            raise ValueError(f"MVFNetConfig.encoder: expected 'official' or 'vgg', got {config.encoder!r}")
        if config.n_views < 1:
            raise ValueError(f"MVFNetConfig.n_views: expected >= 1, got {config.n_views}")
        self.config = config
        if config.encoder == "official":
            self.layer1 = official_encoder(config.width_divisor)
            d = max(1, 512 // config.width_divisor)
        else:
            self.encoder = VGG(
                VGGConfig(
                    depth=config.vgg_depth, num_classes=None, width_divisor=config.width_divisor,
                    input_norm=config.input_norm,
                )
            )  # fmt: skip
            d = self.encoder.out_channels
        self.feature_dim = d
        h, v = config.hidden, config.n_views
        self.fc_3dmm = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(d * v, h * v),
                relu1=nn.ReLU(inplace=True),
                fc2=nn.Linear(h * v, config.n_id + config.n_exp),
            )
        )
        self.fc_pose = nn.Sequential(
            OrderedDict(fc3=nn.Linear(d, h), relu2=nn.ReLU(inplace=True), fc4=nn.Linear(h, config.n_pose))
        )
        for first, last in ((self.fc_3dmm.fc1, self.fc_3dmm.fc2), (self.fc_pose.fc3, self.fc_pose.fc4)):
            nn.init.kaiming_uniform_(first.weight, nonlinearity="relu")
            nn.init.zeros_(first.bias)
            nn.init.normal_(last.weight, std=1e-4)  # released reset_params: start at the mean / reference
            nn.init.zeros_(last.bias)

    def features(self, images: Tensor) -> Tensor:
        """Shared-weight per-image features ``[N,3,H,W] -> [N,512]`` (global average pooling)."""
        if self.config.encoder == "vgg":
            return self.encoder(images)
        x = self.layer1(images)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        if (
            not isinstance(images, Tensor)
            or images.ndim != 5
            or images.shape[1] != cfg.n_views
            or images.shape[2] != 3
        ):
            raise ValueError(
                f"MVFNet expects images [B,{cfg.n_views},3,H,W], got {tuple(getattr(images, 'shape', ()))}"
            )
        b = images.shape[0]
        feats = self.features(images.flatten(0, 1))  # shared weights across views: [B*V, 512]
        pose = self.fc_pose(feats).view(b, cfg.n_views, cfg.n_pose)
        params = self.fc_3dmm(feats.reshape(b, -1))
        x_id, x_exp = torch.split(params, [cfg.n_id, cfg.n_exp], dim=1)
        return {"id": x_id, "exp": x_exp, "pose": pose}


register(
    "mvfnet",
    MVFNetConfig(),
    MVFNet,
    "MVF-Net §3.3 (mvfnet.txt) + the released VggEncoder: shared 7-conv BN encoder, 2-FC pose / 3DMM heads",
)

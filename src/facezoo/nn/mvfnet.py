"""MVF-Net's multi-view encoder/regressor (Wu et al., CVPR 2019; mvfnet.txt §3.3, Fig. 2).

"Each input image is sent through several convolutional layers (borrowed from VGG-Face) and pooled to a
512-dimensional feature vector. Then a set of pose parameters P = {f, alpha, beta, gamma, t_x, t_y} is
regressed for each view via two fully-connected layers. The three 512-dimensional feature vectors are
concatenated together to regress the 228-dimensional 3DMM parameters X = {x_id, x_exp} (199 for identity and
29 for expression) using another two fully-connected layers ... The networks to extract features and regress
pose parameters for the three views have shared weights." Inputs are 224x224 crops (§4.2).

Where the paper is silent: the encoder is VGG-16's 13 convolutions (VGG-Face's layout, so VGG-Face weights
load into ``encoder`` with ``load_backbone_weights(net.encoder, path, exclude=("classifier.",))``) followed by
global average pooling; the hidden FC width is 512 with ReLU; the view order is the caller's (A = left, B =
frontal, C = right in the paper) and the number of views is a config field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ._registry import register
from .params import ShapeSizes
from .vgg import VGG, VGGConfig


@dataclass(frozen=True)
class MVFNetConfig(ShapeSizes):
    """MVF-Net configuration (``n_id``, ``n_exp``: :class:`~facezoo.nn.params.ShapeSizes`, 199 + 29).

    Attributes:
        n_views: number of views (3).
        vgg_depth: depth of the VGG encoder (16 = VGG-Face).
        width_divisor: divide VGG widths (1 = the paper; >1 for tiny tests).
        input_norm: VGG input normalisation (``"vggface"`` for VGG-Face weights).
        hidden: width of the hidden FC layers.
        n_pose: per-view pose size (6: f, 3 angles, t_x, t_y).
    """

    n_views: int = 3
    vgg_depth: int = 16
    width_divisor: int = 1
    input_norm: Literal["imagenet", "vggface", "none"] = "vggface"
    hidden: int = 512
    n_pose: int = 6


class MVFNet(nn.Module):
    """``forward(images [B,V,3,H,W] in [0,1]) -> {"id": [B,n_id], "exp": [B,n_exp], "pose": [B,V,n_pose]}``.

    Example:
        >>> net = MVFNet(MVFNetConfig())
        >>> out = net(torch.rand(2, 3, 3, 224, 224))     # out["pose"]: [2, 3, 6]
    """

    def __init__(self, config: MVFNetConfig = MVFNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.encoder = VGG(
            VGGConfig(
                depth=config.vgg_depth, num_classes=None, width_divisor=config.width_divisor,
                input_norm=config.input_norm,
            )
        )  # fmt: skip
        d, h = self.encoder.out_channels, config.hidden
        self.pose_head = nn.Sequential(nn.Linear(d, h), nn.ReLU(inplace=True), nn.Linear(h, config.n_pose))
        self.param_head = nn.Sequential(
            nn.Linear(d * config.n_views, h), nn.ReLU(inplace=True), nn.Linear(h, config.n_id + config.n_exp)
        )
        for head in (self.pose_head, self.param_head):
            nn.init.kaiming_uniform_(head[0].weight, nonlinearity="relu")
            nn.init.zeros_(head[0].bias)
            nn.init.normal_(head[2].weight, std=1e-3)  # start near the mean face / zero pose offset
            nn.init.zeros_(head[2].bias)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        if images.ndim != 5 or images.shape[1] != cfg.n_views or images.shape[2] != 3:
            raise ValueError(f"MVFNet expects images [B,{cfg.n_views},3,H,W], got {tuple(images.shape)}")
        b = images.shape[0]
        feats = self.encoder(images.flatten(0, 1))  # shared weights across views: [B*V, 512]
        pose = self.pose_head(feats).view(b, cfg.n_views, cfg.n_pose)
        params = self.param_head(feats.view(b, -1))
        x_id, x_exp = torch.split(params, [cfg.n_id, cfg.n_exp], dim=1)
        return {"id": x_id, "exp": x_exp, "pose": pose}


register(
    "mvfnet", MVFNetConfig(), MVFNet, "MVF-Net §3.3 (mvfnet.txt): shared VGG-Face encoder, 2-FC pose / params"
)

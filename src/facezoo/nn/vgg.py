"""VGG-16 (Simonyan & Zisserman 2015) and VGG-Face (Parkhi et al. 2015): classifiers and feature extractors.

Used for perceptual losses (SIR §III-D uses VGG-16 feature maps; Nonlinear 3DMM Eq. 5 a perceptual loss) and
as MVF-Net's image encoder ("convolutional layers borrowed from VGG-Face", mvfnet.txt §3.3). Parameter names
match torchvision's ``vgg16`` (``features.N``, ``classifier.{0,3,6}``), so an ImageNet ``vgg16-*.pth`` loads
with :func:`facezoo.nn.load_backbone_weights`; VGG-Face weights converted to that layout (2622-way classifier)
load the same way.

Inputs are RGB in [0, 1]; the module normalises internally as its weights expect (``input_norm``):
``"imagenet"`` (torchvision: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)), ``"vggface"`` (Caffe
VGG-Face: x*255 minus the mean (129.1863, 104.7624, 93.5940), RGB order) or ``"none"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ._registry import register

# conv widths per block; "M" = 2x2 max-pool
_PLANS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ),
}
_MEANS = {"imagenet": (0.485, 0.456, 0.406), "vggface": (129.1863 / 255, 104.7624 / 255, 93.5940 / 255)}
_STDS = {"imagenet": (0.229, 0.224, 0.225), "vggface": (1 / 255, 1 / 255, 1 / 255)}


@dataclass(frozen=True)
class VGGConfig:
    """VGG configuration.

    Attributes:
        depth: 11, 13, 16 or 19 weight layers.
        num_classes: classifier outputs (1000 ImageNet, 2622 VGG-Face); ``None`` keeps only the convolutions.
        width_divisor: divide every conv width (and the 4096-unit FCs) by this (1 = the paper; >1 for tests).
        input_norm: ``"imagenet"``, ``"vggface"`` or ``"none"`` (see module docstring).
    """

    depth: int = 16
    num_classes: int | None = 1000
    width_divisor: int = 1
    input_norm: Literal["imagenet", "vggface", "none"] = "imagenet"


class VGG(nn.Module):
    """``forward(x [B,3,H,W] in [0,1]) -> logits [B,num_classes]`` (224x224 for the classifier), or the pooled
    conv5 features ``[B, 512/width_divisor]`` without a classifier; :meth:`extract` returns named activations.

    Layer names: ``conv{b}_{i}`` / ``relu{b}_{i}`` (block b, layer i, 1-based) and ``pool{b}``.

    Example:
        >>> vgg = VGG(VGGConfig(num_classes=None, width_divisor=16))     # the paper's widths: width_divisor=1
        >>> feats = vgg.extract(torch.rand(1, 3, 32, 32), ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
        >>> [tuple(f.shape) for f in feats.values()]
        [(1, 4, 32, 32), (1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)]
    """

    def __init__(self, config: VGGConfig = VGGConfig()) -> None:
        super().__init__()
        if config.depth not in _PLANS:
            raise ValueError(f"VGGConfig.depth must be one of {sorted(_PLANS)}, got {config.depth}")
        if config.input_norm not in ("imagenet", "vggface", "none"):
            raise ValueError(f"VGGConfig.input_norm must be imagenet|vggface|none, got {config.input_norm!r}")
        self.config = config
        layers: list[nn.Module] = []
        self.layer_names: list[str] = []
        cin, block, idx = 3, 1, 1
        for v in _PLANS[config.depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self.layer_names.append(f"pool{block}")
                block, idx = block + 1, 1
            else:
                cout = int(v) // config.width_divisor
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False)]
                self.layer_names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
                cin, idx = cout, idx + 1
        self.features = nn.Sequential(*layers)
        self.out_channels = cin
        self.classifier = None
        if config.num_classes:
            hidden = 4096 // config.width_divisor
            self.classifier = nn.Sequential(
                nn.Linear(cin * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
                nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                nn.Linear(hidden, config.num_classes),
            )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d(7) if self.classifier is not None else nn.AdaptiveAvgPool2d(1)
        for m in self.modules():  # torchvision's VGG initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
        if config.input_norm != "none":
            self.register_buffer(
                "mean", torch.tensor(_MEANS[config.input_norm]).view(1, 3, 1, 1), persistent=False
            )
            self.register_buffer(
                "std", torch.tensor(_STDS[config.input_norm]).view(1, 3, 1, 1), persistent=False
            )

    def normalize(self, x: Tensor) -> Tensor:
        """Map an RGB image in [0, 1] to the network's expected input."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG expects x of shape [B,3,H,W], got {tuple(x.shape)}")
        if self.config.input_norm == "none":
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extract(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Activations at the named layers (e.g. ``relu3_3``) for ``x [B,3,H,W]`` in [0, 1].

        Runs the convolutions only up to the deepest requested layer.
        """
        unknown = [n for n in layers if n not in self.layer_names]
        if unknown:
            raise ValueError(f"VGG.extract: unknown layer(s) {unknown}; available: {self.layer_names}")
        wanted, out = set(layers), {}
        last = max(self.layer_names.index(n) for n in layers)
        h = self.normalize(x)
        for i, (name, mod) in enumerate(zip(self.layer_names, self.features)):
            h = mod(h)
            if name in wanted:
                out[name] = h
            if i == last:
                break
        return out

    def forward(self, x: Tensor) -> Tensor:
        h = self.avgpool(self.features(self.normalize(x)))
        h = torch.flatten(h, 1)
        return self.classifier(h) if self.classifier is not None else h


register("vgg16", VGGConfig(), VGG, "Simonyan & Zisserman 2015, config D; SIR §III-D perceptual loss")
register("vgg16_features", VGGConfig(num_classes=None), VGG, "VGG-16 convolutions only (perceptual losses)")
register(
    "vggface",
    VGGConfig(num_classes=2622, input_norm="vggface"),
    VGG,
    "VGG-Face (Parkhi et al. 2015): VGG-16, 2622 ids",
)

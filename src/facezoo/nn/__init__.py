"""Backbones and blocks of the five methods, written from their papers (no torchvision needed).

Every network has a frozen config dataclass and is registered by name::

    >>> import facezoo.nn as fnn
    >>> sorted(fnn.REGISTRY)[:3]
    ['deep3d_cnet', 'deep3d_rnet', 'hourglass']
    >>> net = fnn.build("resnet18", num_outputs=239, width=8)   # overrides config fields by keyword
    >>> net.fc.out_features
    239

and loads weights the user has with ``fnn.load_backbone_weights(net, "resnet50.pth", exclude=("fc.",))``.

``REGISTRY[name].source`` names the paper section each architecture follows. Pretrained weights are never
downloaded here: users point to files they have (torchvision, insightface, NVlabs key names are kept).

**Parameter vocabulary**: every head that regresses face parameters names them as :mod:`facezoo.nn.params`
says (``id``, ``exp``, ``tex``, ``angles``, ``translation``, ``light``, ``pose``), and so do the methods and
the datasets.
"""

from __future__ import annotations

from torch import nn

from ._registry import REGISTRY, Entry, build, make_config, register
from .confidence import ConfidenceNet, ConfidenceNetConfig
from .confnet import ConfNet, ConfNetConfig
from .flow_hs import HornSchunckConfig, HornSchunckFlow
from .hourglass import HourglassConfig, StackedHourglass
from .iresnet import IResNet, IResNetConfig
from .mvfnet import MVFNet, MVFNetConfig
from .nonlinear3dmm import (
    GlobalLocalConfig,
    GlobalLocalDecoder,
    N3DMMEncoder,
    N3DMMEncoderConfig,
    ProxyDecoderConfig,
    ProxyResidualDecoder,
)
from .params import PARAM_KEYS, ShapeSizes
from .pwcnet import PWCNet, PWCNetConfig, correlation, warp
from .resnet import ResNet, ResNetConfig, ResNetFeatures
from .sphereface import SIREncoder, SIREncoderConfig, SphereFace, SphereFaceConfig
from .vgg import VGG, VGGConfig
from .volumetric import VolumeRegressor, VolumeRegressorConfig
from .weights import load_backbone_weights


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "PARAM_KEYS",
    "REGISTRY",
    "ShapeSizes",
    "Entry",
    "build",
    "make_config",
    "register",
    "count_parameters",
    "load_backbone_weights",
    "ConfidenceNet",
    "ConfidenceNetConfig",
    "ConfNet",
    "ConfNetConfig",
    "HourglassConfig",
    "StackedHourglass",
    "IResNet",
    "IResNetConfig",
    "HornSchunckConfig",
    "HornSchunckFlow",
    "MVFNet",
    "MVFNetConfig",
    "GlobalLocalConfig",
    "GlobalLocalDecoder",
    "N3DMMEncoder",
    "N3DMMEncoderConfig",
    "ProxyDecoderConfig",
    "ProxyResidualDecoder",
    "PWCNet",
    "PWCNetConfig",
    "correlation",
    "warp",
    "ResNet",
    "ResNetConfig",
    "ResNetFeatures",
    "SIREncoder",
    "SIREncoderConfig",
    "SphereFace",
    "SphereFaceConfig",
    "VGG",
    "VGGConfig",
    "VolumeRegressor",
    "VolumeRegressorConfig",
]

"""Backbones and blocks of the five methods, written from their papers (no torchvision needed).

Every network has a frozen config dataclass and is registered by name::

    >>> import facezoo.nn as fnn
    >>> sorted(fnn.REGISTRY)[:3]
    ['deep3d_cnet', 'deep3d_rnet', 'hourglass']
    >>> net = fnn.build("resnet50", num_outputs=239)          # overrides config fields by keyword
    >>> fnn.load_backbone_weights(net, "resnet50.pth", exclude=("fc.",))

``REGISTRY[name].source`` names the paper section each architecture follows. Pretrained weights are never
downloaded here: users point to files they have (torchvision, insightface, NVlabs key names are kept).

**Parameter vocabulary.** Every head that regresses face parameters returns a dict with these keys, and the
methods, their ``FaceReconstruction.params`` and the datasets' ``params`` use the same names (``[B,...]``, or
``[B,V,...]`` for per-view outputs of a multi-view network):

=================  ==========================================================================================
key                meaning
=================  ==========================================================================================
``id``             identity shape code: linear identity coefficients (units of std), or the shape latent of
                   a nonlinear decoder that has no separate expression code (nonlinear 3DMM's f_S)
``exp``            expression coefficients (units of std)
``tex``            albedo code: linear texture coefficients, or an albedo latent (nonlinear 3DMM's f_A, SIR)
``angles``         rotation (pitch, yaw, roll) in radians, ``R = Rz Ry Rx``
``translation``    camera-space translation (units of the method's camera)
``light``          spherical-harmonics lighting, 27 = 3 colour channels x 9 bands (channel-major)
``pose``           a packed camera vector whose layout the network documents: MMFace (f, 3 angles, t_x,
                   t_y), MVF-Net per view (f, pitch, yaw, roll, t_x, t_y), SIR (quaternion 4, translation 2,
                   scale 1), nonlinear 3DMM (the 2x4 projection M, row-major); the datasets' 300W-LP ``pose
                   [7]`` is one too. Methods decode it into a camera object (``FaceReconstruction.camera``).
``vertices``       ``[B,V,3]`` model-space mesh, mm (ground truth in datasets)
=================  ==========================================================================================
"""

from __future__ import annotations

from torch import nn

from ._registry import REGISTRY, Entry, build, make_config, register
from .confidence import ConfidenceNet, ConfidenceNetConfig
from .confnet import ConfNet, ConfNetConfig
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
    "REGISTRY",
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

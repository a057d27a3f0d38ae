"""The methods: one LightningModule per paper on a small shared base (docs/architecture.md, "Methods").

The base's contract (:mod:`facezoo.methods.base`): the hooks ``reconstruct``, ``neutral_shape`` and
``training_losses``; training stages (:mod:`facezoo.methods.stages`); the view axis of image sets and
multi-view batches (:mod:`facezoo.methods.views`); ``valid`` masks of mixed batches.
"""

from facezoo.methods.base import FaceMethod, build_morphable, linear_neutral_shape, vertex_error
from facezoo.methods.deep3d import Deep3DFace, aggregate_identity
from facezoo.methods.mmface import MMFace
from facezoo.methods.mvfnet import MVFNet
from facezoo.methods.nonlinear3dmm import NonlinearFace3DMM
from facezoo.methods.pooled import PooledSingleView
from facezoo.methods.reconstruction import FaceReconstruction
from facezoo.methods.sir import SIR
from facezoo.methods.stages import freeze, load_submodules, read_checkpoint
from facezoo.methods.views import PER_SAMPLE_KEYS, flatten_views, num_views, unflatten_views

__all__ = [
    "PER_SAMPLE_KEYS",
    "Deep3DFace",
    "FaceMethod",
    "FaceReconstruction",
    "MMFace",
    "MVFNet",
    "PooledSingleView",
    "NonlinearFace3DMM",
    "SIR",
    "aggregate_identity",
    "build_morphable",
    "flatten_views",
    "freeze",
    "linear_neutral_shape",
    "load_submodules",
    "num_views",
    "read_checkpoint",
    "unflatten_views",
    "vertex_error",
]

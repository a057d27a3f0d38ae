"""The methods: one LightningModule per paper on a small shared base (DESIGN.md "Methods")."""

from facezoo.methods.base import FaceMethod, build_morphable, vertex_error
from facezoo.methods.deep3d import Deep3DFace, aggregate_identity
from facezoo.methods.reconstruction import FaceReconstruction

__all__ = [
    "Deep3DFace",
    "FaceMethod",
    "FaceReconstruction",
    "aggregate_identity",
    "build_morphable",
    "vertex_error",
]

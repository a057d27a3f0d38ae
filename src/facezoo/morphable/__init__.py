"""Morphable models: :class:`MorphableModel`, the canonical HDF5 file and loaders for real model files.

Loaders convert every source to facezoo's model space (mm, +y up, +z out of the face, CCW triangles seen
from outside) with coefficients in units of std: :mod:`.bfm` (Basel Face Model 2009 + FaceWarehouse
expressions in the Deep3DFace and 3DDFA crops), :mod:`.sfm` (Surrey Face Model), :mod:`.ict` (ICT-FaceKit),
:mod:`.procedural` (the built-in licence-clean face) and :mod:`.hdf5` (``save_model`` / ``load_model``, the
fast canonical format).
"""

from facezoo.morphable.bfm import load_3ddfa_mean, load_bfm_3ddfa, load_bfm_deep3d, params_from_300wlp
from facezoo.morphable.hdf5 import load_model, read_info, save_model
from facezoo.morphable.ict import load_ict
from facezoo.morphable.model import MorphableModel
from facezoo.morphable.procedural import procedural_model
from facezoo.morphable.sfm import load_sfm
from facezoo.morphable.uv import cylindrical_uv

__all__ = [
    "MorphableModel",
    "cylindrical_uv",
    "load_3ddfa_mean",
    "load_bfm_3ddfa",
    "load_bfm_deep3d",
    "load_ict",
    "load_model",
    "load_sfm",
    "params_from_300wlp",
    "procedural_model",
    "read_info",
    "save_model",
]

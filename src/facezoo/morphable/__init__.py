"""Morphable models: :class:`MorphableModel`, the canonical HDF5 file and loaders for real model files.

Loaders convert every source to facezoo's model space (mm, +y up, +z out of the face, CCW triangles seen
from outside) with coefficients in units of std: :mod:`.bfm` (Basel Face Model 2009 + FaceWarehouse
expressions in the Deep3DFace and 3DDFA crops), :mod:`.sfm` (Surrey Face Model), :mod:`.ict` (ICT-FaceKit),
and :mod:`.hdf5` (``save_model`` / ``load_model``, the fast canonical format).
"""

from facezoo.morphable.model import MorphableModel

__all__ = ["MorphableModel"]

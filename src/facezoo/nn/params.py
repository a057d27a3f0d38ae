"""The parameter vocabulary shared by :mod:`facezoo.nn`, the methods and the datasets.

Every head that regresses face parameters returns a dict with these keys, and the
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

from dataclasses import dataclass

#: the parameter names of the vocabulary (module docstring), in Deep3DFace's output order for the first six.
PARAM_KEYS = ("id", "exp", "tex", "angles", "light", "translation", "pose", "vertices")


@dataclass(frozen=True)
class ShapeSizes:
    """Sizes of the ``id`` and ``exp`` outputs of a head (the config base of the networks that regress them).

    Attributes:
        n_id: identity coefficients (199: the 3DDFA crop of BFM 2009, as in the 300W-LP labels).
        n_exp: expression coefficients (29: 3DDFA's FaceWarehouse expression basis).
    """

    n_id: int = 199
    n_exp: int = 29

"""Loss families shared by the methods: one module per family, small pure functions.

- :mod:`.photometric`: robust masked per-pixel colour distance (Deep3DFace Eq. 2).
- :mod:`.landmark`: weighted squared 2D landmark distance (Deep3DFace Eq. 3) and its landmark weights.
- :mod:`.perceptual`: cosine distance of face-recognition embeddings (Deep3DFace Eq. 4).
- :mod:`.regularisers`: coefficient priors (Eq. 5) and texture-variance flattening (Eq. 6).
- :mod:`.skin`: the naive-Bayes GMM skin classifier behind Deep3DFace's skin attention.
- SIR (sir.txt): :mod:`.nll` (confidence-weighted Laplacian / Gaussian NLL, Eqs. 11-12), :mod:`.cosface`
  (CosFace), :mod:`.centre` (weighted centre loss, Eqs. 19-20), :mod:`.kl` (batch KL prior, Eq. 21),
  :mod:`.uv_albedo` (UV albedo regulariser, Eq. 16), :mod:`.landmark_norm` (Eq. 10).
- :mod:`.volumetric`: voxel-wise BCE of occupancy volumes (MMFace Eq. 3).
- :mod:`.basis_l2`: geometry-weighted coefficient errors ``||U(a - â)||²`` (MMFace Eqs. 5-6).
- :mod:`.masks`: row masks of mixed batches: every loss takes ``valid [B]`` and ignores the rows that are
  False.
"""

from facezoo.losses.basis_l2 import basis_gram, basis_weighted_l2
from facezoo.losses.centre import CentreBank, centre_loss, centre_update, neutral_frontal_confidence
from facezoo.losses.cosface import CosFace, cosface_loss
from facezoo.losses.kl import batch_kl_standard_normal
from facezoo.losses.landmark import DEEP3D_LANDMARK_WEIGHTS, landmark_loss, landmark_weights
from facezoo.losses.landmark_norm import landmark_norm_loss
from facezoo.losses.masks import masked_mean
from facezoo.losses.nll import gaussian_nll, laplacian_nll
from facezoo.losses.perceptual import FaceEmbedder, cosine_distance
from facezoo.losses.photometric import photometric_loss
from facezoo.losses.regularisers import coefficient_l2, texture_variance
from facezoo.losses.uv_albedo import uv_albedo_regulariser, uv_smoothness
from facezoo.losses.volumetric import volumetric_bce

__all__ = [
    "CentreBank",
    "CosFace",
    "batch_kl_standard_normal",
    "centre_loss",
    "centre_update",
    "cosface_loss",
    "gaussian_nll",
    "laplacian_nll",
    "landmark_norm_loss",
    "neutral_frontal_confidence",
    "uv_albedo_regulariser",
    "uv_smoothness",
    "DEEP3D_LANDMARK_WEIGHTS",
    "FaceEmbedder",
    "basis_gram",
    "basis_weighted_l2",
    "coefficient_l2",
    "cosine_distance",
    "landmark_loss",
    "landmark_weights",
    "masked_mean",
    "photometric_loss",
    "texture_variance",
    "volumetric_bce",
]

"""Evaluation metrics: torchmetrics ``Metric`` classes with functional twins, plus result reporting.

Every class keeps sum/count (or ``cat``) states with ``dist_reduce_fx`` so that it is exact under DDP, and
``compute()`` returns a dict of scalar tensors (ready for ``LightningModule.log_dict``):

========================  =====================================  ===========================================
class / function          protocol                               ``compute()`` keys
========================  =====================================  ===========================================
LandmarkNME /             AFLW2000-3D 68-point NME, yaw buckets  nme, nme_std, nme_0_30, nme_30_60, nme_60_90,
landmark_nme              (3DDFA's benchmark_aflw2000.py)        nme_balanced, nme_balanced_std
NME3D / nme3d             MMFace Eq. 11 (z-translation aligned)  nme3d, nme3d_std
FlorenceNME3D /           PRN-style: ICP, nearest point,         nme3d_florence, nme3d_florence_std
nme3d_florence            / 3D box diagonal
MeshRMSE / mesh_rmse      MICC Florence, Deng et al.: 95 mm      rmse, rmse_std (mm)
                          crop, scaled ICP, point-to-plane
VerificationAccuracy /    LFW 10-fold, Euclidean and cosine      acc_euclidean(_std), acc_cosine(_std)
verification_accuracy
PhotometricError /        nonlinear 3DMM Table 1 l2,1            l21
photometric_error
========================  =====================================  ===========================================

:mod:`facezoo.metrics.report` formats these dicts as tables and JSON files.
"""

from facezoo.metrics.landmark_nme import (
    YAW_BUCKETS,
    LandmarkNME,
    crop_to_original,
    landmark_nme,
    landmark_normalizer,
    yaw_bucket,
)
from facezoo.metrics.mesh_rmse import MeshRMSE, mesh_rmse, point_to_surface_distance
from facezoo.metrics.nme3d import NME3D, box_diagonal, nme3d
from facezoo.metrics.nme3d_florence import FlorenceNME3D, nme3d_florence
from facezoo.metrics.photometric import PhotometricError, photometric_error
from facezoo.metrics.report import format_table, write_json
from facezoo.metrics.verification import (
    VerificationAccuracy,
    best_threshold,
    kfold_accuracy,
    pair_distance,
    verification_accuracy,
)

__all__ = [
    "NME3D",
    "YAW_BUCKETS",
    "FlorenceNME3D",
    "LandmarkNME",
    "MeshRMSE",
    "PhotometricError",
    "VerificationAccuracy",
    "best_threshold",
    "box_diagonal",
    "crop_to_original",
    "format_table",
    "kfold_accuracy",
    "landmark_nme",
    "landmark_normalizer",
    "mesh_rmse",
    "nme3d",
    "nme3d_florence",
    "pair_distance",
    "photometric_error",
    "point_to_surface_distance",
    "verification_accuracy",
    "write_json",
    "yaw_bucket",
]

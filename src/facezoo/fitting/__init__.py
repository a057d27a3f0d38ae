"""Analysis-by-synthesis fitting of any morphable model to photos, with no network (docs/architecture.md).

* :func:`fit_landmarks` — batched Levenberg-Marquardt on pose, identity and expression from 2D landmarks
  (iBUG-68 or five points), moving jaw contour, standard-normal coefficient prior; CPU or GPU.
* :func:`refine_photometric` — optional photometric + SH-light refinement through the shared renderer.
* :mod:`~facezoo.fitting.contour`, :mod:`~facezoo.fitting.targets`, :mod:`~facezoo.fitting.camera` — the
  pieces: silhouette correspondences, which model points the landmarks see, the linear start and crops.
"""

from facezoo.fitting.camera import (
    affine_camera_init,
    frontal_camera_init,
    transform_camera,
    weak_to_perspective,
)
from facezoo.fitting.contour import ContourLines, assign_contour, contour_lines, silhouette
from facezoo.fitting.landmark_fit import LandmarkFit, fit_landmarks, landmark_normaliser
from facezoo.fitting.photometric import PhotometricFit, crop_photos, refine_photometric
from facezoo.fitting.targets import LandmarkSet, landmark_set

__all__ = [
    "ContourLines",
    "LandmarkFit",
    "LandmarkSet",
    "PhotometricFit",
    "crop_photos",
    "refine_photometric",
    "affine_camera_init",
    "assign_contour",
    "contour_lines",
    "fit_landmarks",
    "frontal_camera_init",
    "landmark_normaliser",
    "landmark_set",
    "silhouette",
    "transform_camera",
    "weak_to_perspective",
]

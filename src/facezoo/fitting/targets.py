"""Which model points a set of 2D landmarks observes: iBUG-68 or Deep3DFace's five points.

Every target landmark is a weighted sum of (at most) two model vertices, ``X_l = sum_j w_lj v[index_lj]``:
a single vertex for the iBUG-68 points (``index[:, 0] == index[:, 1]``, weights 0.5 / 0.5) and the mean of
the two eye corners for the eye centres of the five-point set (left eye, right eye, nose tip, left and
right mouth corner, image-left first, as :func:`facezoo.data.landmarks68_to_5`). A landmark whose model
vertex is a stand-in (``MorphableModel.landmark_valid`` False, e.g. the SFM's jaw contour) is marked invalid
and either fitted through the moving contour (:mod:`facezoo.fitting.contour`) or ignored.

Example:
    >>> from facezoo.methods.base import build_morphable
    >>> s = landmark_set(build_morphable("procedural:600"), 5)
    >>> s.index.shape, s.ibug[0].tolist(), bool(s.jaw.any())
    (torch.Size([5, 2]), [36, 39], False)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facezoo.morphable import MorphableModel

__all__ = ["LandmarkSet", "landmark_set", "JAW", "CHIN"]

#: 0-based iBUG-68 indices of the jaw contour (iBUG 1-17); the chin (iBUG 9) is index 8.
JAW = tuple(range(17))
CHIN = 8
#: iBUG-68 pairs averaged into Deep3DFace's five points (eye centres = mean of the eye corners).
FIVE = ((36, 39), (42, 45), (30, 30), (48, 48), (54, 54))


@dataclass
class LandmarkSet:
    """``index [L,2]`` model vertices, ``weight [L,2]``, ``valid [L]`` (the model has real vertices there),
    ``jaw [L]`` (a jaw-contour point other than the chin: may slide along the silhouette), ``ibug [L,2]`` the
    iBUG-68 indices each point comes from."""

    index: Tensor
    weight: Tensor
    valid: Tensor
    jaw: Tensor
    ibug: Tensor

    def __len__(self) -> int:
        return self.index.shape[0]


def landmark_set(model: MorphableModel, n_points: int) -> LandmarkSet:
    """The model points observed by ``n_points`` (68: iBUG; 5: Deep3DFace's five) image landmarks."""
    if n_points == 68:
        ibug = torch.arange(68)[:, None].expand(68, 2)
    elif n_points == 5:
        ibug = torch.tensor(FIVE)
    else:
        raise ValueError(f"landmarks: expected 68 (iBUG) or 5 (Deep3DFace) points per face, got {n_points}")
    lm = model.landmarks68.cpu()
    index = lm[ibug]
    weight = torch.full(index.shape, 0.5, dtype=torch.float64)
    valid = model.landmark_valid.cpu()[ibug].all(-1)
    jaw = torch.zeros(len(ibug), dtype=torch.bool)
    if n_points == 68:
        jaw[list(JAW)] = True
        jaw[CHIN] = False
    return LandmarkSet(index=index, weight=weight, valid=valid, jaw=jaw, ibug=ibug)

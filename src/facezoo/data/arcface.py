"""ArcFace's five-point alignment: warp a face to the 112x112 template a recognition network was trained on.

ArcFace (insightface) crops faces with the least-squares similarity (rotation, isotropic scale, translation;
Umeyama) that maps the five landmarks (eye centres, nose tip, mouth corners; image-left first) onto a fixed
template. A recogniser sees out-of-distribution input on any other crop, so the official Deep3DFace code
warps both the input (by its ground-truth landmarks) and the rendering (by the predicted landmarks) to this
template before its perception loss (``estimate_norm`` + kornia's ``warp_affine``).

Template: :data:`ARCFACE_TEMPLATE_112`, insightface's ``arcface_src`` in pixels with *integer* pixel centres
(OpenCV / skimage / insightface convention). facezoo's pixel coordinates put pixel centres at +0.5
(:mod:`facezoo.data.align`), so :func:`arcface_template` adds 0.5; the warp (:func:`facezoo.data.warp_image`)
handles kornia's integer-centre convention. (The official code's landmarks are flipped with ``H - 1 - y`` and
mixed with its rasteriser's half-pixel centres, up to half a pixel apart; here one convention holds.)

Example:
    >>> from facezoo.data.align import transform_points
    >>> lm5 = arcface_template(224) + torch.tensor([3.0, -2.0])   # a face at twice the template's size, moved
    >>> A = arcface_affine(lm5[None])                              # onto the 112 template
    >>> bool((transform_points(lm5[None].double(), A) - arcface_template(112)).abs().max() < 1e-6)
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.data.align import estimate_similarity, warp_image

__all__ = ["ARCFACE_TEMPLATE_112", "arcface_template", "five_points", "arcface_affine", "warp_to_arcface"]

#: insightface's 112x112 ArcFace template (left eye, right eye, nose tip, left and right mouth corners;
#: image-left first), pixels with integer pixel centres.
ARCFACE_TEMPLATE_112 = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


def arcface_template(size: int = 112, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """The template ``[5,2]`` for a ``size``-pixel square crop in facezoo pixel coordinates (centres at +0.5;
    scaled by ``size / 112`` about the corner, as insightface does for other sizes).

    Example:
        >>> arcface_template(112)[0]
        tensor([38.7946, 52.1963], dtype=torch.float64)
    """
    t = torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float64)
    return ((t + 0.5) * (size / 112.0)).to(dtype=dtype, device=device)


def five_points(landmarks: Tensor) -> Tensor:
    """``[B,68,2]`` (iBUG) or ``[B,5,2]`` landmarks -> five points ``[B,5,2]`` (Deep3DFace's ``extract_5p``:
    eye centres = mean of the two eye corners, nose tip, mouth corners; image-left first).

    Example:
        >>> five_points(torch.arange(136.0).view(1, 68, 2))[0, 2]  # the nose tip, point 30
        tensor([60., 61.])
    """
    if not isinstance(landmarks, Tensor) or landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(
            f"landmarks: expected [B,68,2] or [B,5,2], got {getattr(landmarks, 'shape', landmarks)}"
        )
    if landmarks.shape[1] == 5:
        return landmarks
    if landmarks.shape[1] != 68:
        raise ValueError(f"landmarks: expected 68 or 5 points, got {landmarks.shape[1]}")
    lm = landmarks
    return torch.stack(
        (lm[:, [36, 39]].mean(1), lm[:, [42, 45]].mean(1), lm[:, 30], lm[:, 48], lm[:, 54]), dim=1
    )


def arcface_affine(landmarks: Tensor, size: int = 112) -> Tensor:
    """Similarity ``[B,2,3]`` (float64, facezoo pixel coordinates) mapping a face's landmarks (``[B,68,2]`` or
    ``[B,5,2]`` pixels of its image) onto the ``size`` ArcFace template, fitted by least squares (Umeyama,
    as insightface / skimage's ``SimilarityTransform.estimate``). Not differentiable (the official code fits
    in numpy): the landmarks are detached."""
    src = five_points(landmarks).detach().double()
    dst = arcface_template(size, device=src.device).expand(src.shape[0], 5, 2)
    return estimate_similarity(src, dst)


def warp_to_arcface(image: Tensor, landmarks: Tensor, size: int = 112) -> Tensor:
    """``image [B,C,H,W]`` warped to the ArcFace crop ``[B,C,size,size]`` (bilinear, zeros outside) by
    :func:`arcface_affine` of its ``landmarks`` (pixels of ``image``); differentiable in ``image``."""
    return warp_image(image, arcface_affine(landmarks, size).to(image.device), size)

"""``--model``: what reconstructs the photos, and running a method's network on aligned crops of them.

:func:`resolve_model` is the one place that turns ``--model`` into a morphable model and, for a checkpoint,
the method that regresses its parameters:

* ``procedural[:...]`` or a facezoo ``.h5`` file: the morphable model only (``--method fit``);
* anything else is a checkpoint: a zoo name (``facezoo zoo list``), a local file written by ``facezoo fit``
  or a URL, loaded by :func:`facezoo.load_pretrained` (downloaded once and sha256-checked, read with
  ``weights_only=True``, strict keys, eval mode; the method rebuilt from its init arguments with the
  training-time files dropped). Its morphable model is the one it was trained with.

Alignment before the network (:func:`regress_photos`): Deep3DFace's five-point POS crop
(:func:`facezoo.data.deep3d_affine`, 102 px per template unit at 224, scaled with the method's image size);
every other method a square landmark-box crop (:func:`facezoo.data.landmark_box_affine`, side ``1.25 x``
the box, or the method's ``photo_crop_scale`` attribute). The network's camera is then moved from the crop
to the photo (:func:`facezoo.fitting.transform_camera`), so every export is in photo pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from facezoo.morphable import MorphableModel

__all__ = ["ResolvedModel", "resolve_model", "regress_photos"]


@dataclass
class ResolvedModel:
    """``morphable`` model; ``method`` (a FaceMethod in eval mode) or None; ``checkpoint`` path or None;
    ``name`` for the exports."""

    morphable: MorphableModel
    method: object | None
    checkpoint: str | None
    name: str


def resolve_model(spec: str) -> ResolvedModel:
    """``--model`` -> :class:`ResolvedModel` (module docstring).

    Example:
        >>> r = resolve_model("procedural:600")
        >>> r.method is None, r.morphable.n_vertices > 0
        (True, True)
    """
    from facezoo.methods.base import build_morphable

    if not isinstance(spec, str) or not spec:
        raise ValueError(f"--model: expected a checkpoint, a .h5 model or 'procedural', got {spec!r}")
    if spec == "procedural" or spec.startswith("procedural:") or spec.endswith(".h5"):
        model = build_morphable(spec)
        return ResolvedModel(model, None, None, model.name or spec)
    from facezoo.hub import load_pretrained

    try:
        method = load_pretrained(spec)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"--model: {spec!r} is neither a checkpoint file, a zoo name (`facezoo zoo list`), a facezoo "
            f"morphable model (.h5, see `facezoo model convert`) nor 'procedural[:<vertices>]' ({err})"
        ) from err
    return ResolvedModel(method.morphable, method, str(spec), type(method).__name__)


def _five(landmarks: Tensor) -> Tensor:
    from facezoo.data.landmarks import landmarks68_to_5

    if landmarks.shape[-2] == 5:
        return landmarks
    return torch.as_tensor(landmarks68_to_5(landmarks.cpu().numpy()), dtype=landmarks.dtype)


def alignment(method, landmarks: list[Tensor]) -> Tensor:
    """Photo -> crop affines ``[B,2,3]`` for ``method``'s input (module docstring)."""
    from facezoo.data.align import deep3d_affine, landmark_box_affine
    from facezoo.methods.deep3d import Deep3DFace

    size = method.image_size
    if isinstance(method, Deep3DFace):
        five = torch.stack([_five(lm.double()) for lm in landmarks])
        return deep3d_affine(five, target_size=size, rescale_factor=102.0 * size / 224.0)
    scale = float(getattr(method, "photo_crop_scale", 1.25))
    return torch.cat([landmark_box_affine(lm.double()[None], size, scale=scale) for lm in landmarks])


@torch.no_grad()
def regress_photos(method, images: list[Tensor], landmarks: list[Tensor]):
    """Run ``method`` on aligned crops of ``images`` ``[3,H_i,W_i]`` -> its :class:`FaceReconstruction` with
    the camera and ``landmarks2d`` in photo pixels (``meta["affine"]``: the crops' affines)."""
    from facezoo.data.align import invert_affine, warp_image
    from facezoo.fitting.camera import transform_camera

    affine = alignment(method, landmarks)
    size = method.image_size
    dev = next(iter(method.parameters())).device
    crops = torch.stack(
        [warp_image(im[None].float().to(dev), a[None], size)[0] for im, a in zip(images, affine)]
    )
    rec = method.reconstruct({"image": crops})
    cam = transform_camera(rec.camera.to(dtype=torch.float64), invert_affine(affine).to(dev))
    rec.camera = cam
    rec.landmarks2d = cam.project(rec.landmarks3d.double())
    rec.meta["affine"] = affine
    return rec


def as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)

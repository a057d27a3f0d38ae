"""``--model``: what reconstructs the photos, and running a method's network on aligned crops of them.

:func:`resolve_model` is the one place that turns ``--model`` into a morphable model and, for a checkpoint,
the method that regresses its parameters:

* ``procedural[:...]`` or a facezoo ``.h5`` file: the morphable model only (``--method fit``);
* a checkpoint (``.ckpt``/``.pt``/``.pth`` written by ``facezoo fit``): read with ``weights_only=True``
  (:func:`facezoo.methods.stages.read_checkpoint`: nothing in the file runs), the method class named by its
  ``hyper_parameters["_class_path"]`` (only ``facezoo.`` classes are imported), rebuilt from its init
  arguments (paths to extra pretrained weights dropped: the state dict holds the network) and loaded
  strictly, in eval mode. Its morphable model is the one it was trained with.

Zoo names (``method.tag``) are the next branch here once the checkpoint zoo exists.

Alignment before the network (:func:`regress_photos`): Deep3DFace's five-point POS crop
(:func:`facezoo.data.deep3d_affine`, 102 px per template unit at 224, scaled with the method's image size);
every other method a square landmark-box crop (:func:`facezoo.data.landmark_box_affine`, side ``1.25 x``
the box, or the method's ``photo_crop_scale`` attribute). The network's camera is then moved from the crop
to the photo (:func:`facezoo.fitting.transform_camera`), so every export is in photo pixels.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facezoo.morphable import MorphableModel

__all__ = ["ResolvedModel", "resolve_model", "load_method", "regress_photos"]

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


@dataclass
class ResolvedModel:
    """``morphable`` model; ``method`` (a FaceMethod in eval mode) or None; ``checkpoint`` path or None;
    ``name`` for the exports."""

    morphable: MorphableModel
    method: object | None
    checkpoint: str | None
    name: str


def load_method(path: str | os.PathLike):
    """The :class:`~facezoo.methods.base.FaceMethod` saved in a checkpoint (module docstring)."""
    from facezoo.methods.base import FaceMethod
    from facezoo.methods.stages import read_checkpoint

    ckpt = read_checkpoint(path, "--model")
    hp = ckpt.get("hyper_parameters")
    state = ckpt.get("state_dict")
    if not isinstance(hp, dict) or not isinstance(state, dict):
        raise ValueError(
            f"--model: {path} has no hyper_parameters/state_dict: not a checkpoint written by `facezoo fit`"
        )
    class_path = hp.get("_class_path")
    if not isinstance(class_path, str) or not class_path.startswith("facezoo."):
        raise ValueError(
            f"--model: {path} does not name a facezoo method (hyper_parameters._class_path = {class_path!r})"
        )
    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, FaceMethod)):
        raise ValueError(f"--model: {path} names {class_path}, which is not a facezoo FaceMethod")
    kwargs = {k: v for k, v in hp.items() if not k.startswith("_")}
    for key in list(kwargs):  # external pretrained files: the state dict holds what inference needs
        if key.endswith(("_weights", "_checkpoint")):
            kwargs[key] = None
    method = cls(**kwargs)
    missing, unexpected = method.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"--model: {path} does not match {name}: missing keys {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return method.eval()


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
    path = Path(spec).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES:
        method = load_method(path)
        return ResolvedModel(method.morphable, method, str(path), type(method).__name__)
    raise ValueError(
        f"--model: {spec!r} is neither a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}), a facezoo morphable "
        "model (.h5, see `facezoo model convert`) nor 'procedural[:<vertices>]'"
    )


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

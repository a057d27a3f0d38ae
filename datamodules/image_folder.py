"""Any folder of face images with landmark files (Deep3DFace training data, prediction inputs).

For ``<dir>/<name>.jpg|png`` the landmarks are looked up, in this order, at ``<dir>/<name>.pts`` (iBUG 68),
``<dir>/<name>.txt``, ``<dir>/detections/<name>.txt`` (Deep3DFace's 5-point detections, ``x<TAB>y``) and
``<dir>/landmarks/<name>.pts|txt``. A ``.txt`` may hold 5 or 68 points. Images without landmarks are an error
listing them (or, with ``missing_landmarks="ignore"``, left out with a warning).

Alignment: ``"deep3d"`` (Deep3DFace's 5-point POS crop, 68 points reduced with ``extract_5p``; 102 px per
template unit at 224, scaled with ``image_size`` like Deep3DFace's focal length) or ``"box"`` (landmark box x
``box_scale``). Samples carry ``landmarks5`` and, from 68-point files, ``landmarks68``.

Training jitter (``shift_pixels``, ``scale_delta``, ``rotation_degrees``, 0 by default): a random similarity
about the crop centre composed into the crop's affine (:func:`facezoo.data.align.random_crop_jitter`), so
image, landmarks and ``affine`` stay consistent; the official Deep3DFace training uses 10 px, 0.1 and 10
degrees (at 224; scale the shift with the crop) plus ``p_flip: 0.5``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from facezoo.data.align import (
    center_scale_affine,
    compose_affine,
    deep3d_affine,
    landmark_box_affine,
    random_crop_jitter,
)
from facezoo.data.io import IMAGE_SUFFIXES, FaceDataset, OnBadSample, check_root, load_image_uint8
from facezoo.data.landmarks import landmarks68_to_5, read_landmark_file

from ._base import FaceDataModule, batch_keys, crop_face


def find_landmark_file(image: Path) -> Path | None:
    """The landmark file of ``image`` (see the module docstring), or None."""
    d, n = image.parent, image.stem
    for cand in (
        d / f"{n}.pts",
        d / f"{n}.txt",
        d / "detections" / f"{n}.txt",
        d / "landmarks" / f"{n}.pts",
        d / "landmarks" / f"{n}.txt",
    ):
        if cand.is_file():
            return cand
    return None


def load_face_crop(path: Path, image_size: int, center_fraction: float = 1.0) -> dict:
    """Load ``path`` and crop its face to ``image_size``: Deep3DFace's 5-point alignment when a landmark file
    sits beside the image (:func:`~facezoo.datamodules.image_folder.find_landmark_file`), else the central
    square of side ``center_fraction * min(H, W)``. Returns :func:`crop_face`'s dict (``image``, ``affine``,
    ``landmarks5`` when known)."""
    image = load_image_uint8(path)
    lm_file = find_landmark_file(path)
    if lm_file is not None:
        pts = read_landmark_file(lm_file, (68, 5))
        lm5 = landmarks68_to_5(pts) if len(pts) == 68 else pts
        affine = deep3d_affine(torch.as_tensor(lm5)[None], target_size=image_size)
        return crop_face(image, affine, image_size, landmarks5=lm5)
    h, w = image.shape[:2]
    scale = image_size / (center_fraction * min(h, w))
    affine = center_scale_affine(torch.tensor([[w / 2, h / 2]]), torch.tensor([scale]), image_size)
    return crop_face(image, affine, image_size)


class ImageFolderDataset(FaceDataset):
    """Images + 68/5-point landmarks (see the module docstring). ``recursive`` scans sub-folders too."""

    def __init__(
        self,
        root,
        alignment: str = "deep3d",
        image_size: int = 224,
        box_scale: float = 1.25,
        recursive: bool = False,
        missing_landmarks: str = "error",
        transform=None,
        on_bad_sample: OnBadSample = "error",
        jitter: tuple[float, float, float] | None = None,
    ):
        super().__init__(on_bad_sample)
        self.jitter = jitter if jitter is not None and any(jitter) else None
        if alignment not in ("deep3d", "box"):
            raise ValueError(f"alignment must be 'deep3d' or 'box', got {alignment!r}")
        root = check_root(root, "image folder")
        pattern = "**/*" if recursive else "*"
        images = sorted(
            p
            for p in root.glob(pattern)
            if p.suffix.lower() in IMAGE_SUFFIXES and p.parent.name not in ("detections", "landmarks")
        )
        if not images:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
        pairs = [(p, find_landmark_file(p)) for p in images]
        missing = [str(p) for p, lm in pairs if lm is None]
        if missing:
            msg = (
                f"{len(missing)} of {len(images)} images have no landmark file (.pts/.txt, detections/):\n  "
                + "\n  ".join(missing[:20])
            )
            if missing_landmarks == "error":
                raise FileNotFoundError(msg)
            warnings.warn(msg, stacklevel=2)
        self.items = [(p, lm) for p, lm in pairs if lm is not None]
        self.alignment, self.image_size, self.box_scale, self.transform = (
            alignment,
            image_size,
            box_scale,
            transform,
        )

    def load(self, index: int) -> dict:
        path, lm_path = self.items[index]
        pts = read_landmark_file(lm_path, (68, 5))
        lm68 = pts if len(pts) == 68 else None
        lm5 = landmarks68_to_5(pts) if lm68 is not None else pts
        image = load_image_uint8(path)
        if self.alignment == "deep3d":
            affine = deep3d_affine(torch.as_tensor(lm5)[None], target_size=self.image_size)
        else:
            affine = landmark_box_affine(torch.as_tensor(pts)[None], self.image_size, self.box_scale)
        if self.jitter is not None:
            affine = compose_affine(random_crop_jitter(self.image_size, *self.jitter), affine.double())
        out = crop_face(image, affine, self.image_size, landmarks68=lm68, landmarks5=lm5)
        out["path"] = str(path)
        return self.transform(out) if self.transform is not None else out


class ImageFolder(FaceDataModule):
    """Image-folder datamodule: ``root`` serves train and predict.

    Its own arguments are below; the others are :class:`FaceDataModule`'s. ``landmarks68`` is partial: only
    images with a 68-point file have it.

    Args:
        val_root: folder of the ``val`` split (default: ``root``).
        test_root: folder of the ``test`` split (default: ``root``).
        alignment: ``"deep3d"`` (5-point POS crop) or ``"box"`` (landmark box x ``box_scale``).
        box_scale: crop side / landmark-box side for ``alignment="box"``.
        recursive: also scan sub-folders.
        missing_landmarks: ``"error"`` (list the images without a landmark file) or ``"ignore"`` (leave them
            out with a warning).
        shift_pixels, scale_delta, rotation_degrees: training jitter (module docstring; official Deep3DFace:
            10, 0.1, 10 at 224).
    """

    provides = batch_keys("image", "affine", "landmarks5", "landmarks68", "path", "index")
    partial_keys = ("landmarks68",)

    def __init__(
        self,
        val_root: str | None = None, test_root: str | None = None,
        alignment: str = "deep3d",
        box_scale: float = 1.25,
        recursive: bool = False,
        missing_landmarks: str = "error",
        shift_pixels: float = 0.0,
        scale_delta: float = 0.0,
        rotation_degrees: float = 0.0,
        **kwargs,
    ):  # fmt: skip
        super().__init__(**kwargs)
        random_crop_jitter(8, shift_pixels, scale_delta, rotation_degrees)  # checks the values
        self.jitter = (shift_pixels, scale_delta, rotation_degrees)
        root = self.root
        self.roots = {"train": root, "val": val_root or root, "test": test_root or root}
        self.options = dict(
            alignment=alignment, box_scale=box_scale, recursive=recursive, missing_landmarks=missing_landmarks
        )

    def raw_dataset(self, split: str, train: bool) -> ImageFolderDataset:
        jitter = self.jitter if train else None
        return ImageFolderDataset(
            self.roots[split], **self.dataset_args(train), **self.options, jitter=jitter
        )

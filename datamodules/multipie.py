"""CMU Multi-PIE multiview images, single or as MVF-Net triplets (frontal anchor + left + right).

Layout: ``<root>/<session>/multiview/<subject:03d>/<recording:02d>/<camera e.g. 05_1>/
<subject>_<session:02d>_<recording>_<camera without underscore>_<flash:02d>.png``; camera ``05_1`` is frontal.
Landmarks (68 points; ``.mat`` with ``pts``, ``.pts`` or ``.txt``) are read from ``landmarks_root`` at the
image's relative path with the suffix changed, or beside the image. With landmarks the crop is the landmark
box (MVF-Net); without them it is the central square of the frame and the sample has no ``landmarks68``.

Triplets: for every subject/session/recording/flash with a frontal image, all pairs of a ``left_cameras`` and
a ``right_cameras`` image (defaults: the +-15..45 degree cameras; ``view`` = 0 frontal, 1 left, 2 right).
Splits are subject-disjoint: a seeded ``test_fraction`` of the subjects is ``test`` (MVF-Net: "the subjects in
testing split do not appear in training split"); ``val`` = ``test``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import torch

from facezoo.data.align import center_scale_affine, landmark_box_affine
from facezoo.data.augment import random_box_shift
from facezoo.data.io import BadSampleError, OnBadSample, check_root, load_image_uint8
from facezoo.data.landmarks import read_landmark_file

from ._base import FaceDataModule, ViewSetDataset, batch_keys, crop_face

# Horizontal Multi-PIE cameras and their nominal yaw (degrees), from 11_0 (-90) to 24_0 (+90).
CAMERA_YAW = {
    "11_0": -90,
    "12_0": -75,
    "09_0": -60,
    "08_0": -45,
    "13_0": -30,
    "14_0": -15,
    "05_1": 0,
    "05_0": 15,
    "04_1": 30,
    "19_0": 45,
    "20_0": 60,
    "01_0": 75,
    "24_0": 90,
    "08_1": 0,
    "19_1": 0,
}
_FILE = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})$")


def scan_multipie(root: str | Path) -> list[dict]:
    """Every image with its parsed subject, session, recording, camera and flash."""
    root = check_root(root, "Multi-PIE")
    items = []
    for path in sorted(root.glob("*/multiview/*/*/*/*.png")):
        m = _FILE.match(path.stem)
        camera = path.parent.name
        if m is None or m[4] != camera.replace("_", ""):
            raise BadSampleError(
                path, "name is not <subject>_<session>_<recording>_<camera>_<flash>.png of its folder"
            )
        items.append(
            {
                "image": path,
                "rel": path.relative_to(root),
                "subject": int(m[1]),
                "session": int(m[2]),
                "recording": int(m[3]),
                "camera": camera,
                "flash": int(m[5]),
            }
        )
    if not items:
        raise FileNotFoundError(f"no Multi-PIE images under {root}/<session>/multiview/...")
    return items


def subject_split(subjects, test_fraction: float, seed: int) -> set[int]:
    """Seeded, subject-disjoint choice of the test subjects."""
    subjects = sorted(set(subjects))
    g = torch.Generator().manual_seed(seed)
    n_test = int(round(test_fraction * len(subjects)))
    return {subjects[i] for i in torch.randperm(len(subjects), generator=g)[:n_test].tolist()}


class MultiPIEDataset(ViewSetDataset):
    """Multi-PIE samples or triplets (see the module docstring)."""

    def __init__(
        self,
        root,
        mode: str = "triplet",
        split: str = "train",
        test_fraction: float = 0.1,
        landmarks_root=None,
        left_cameras=("14_0", "13_0", "08_0"),
        right_cameras=("05_0", "04_1", "19_0"),
        image_size: int = 224,
        box_scale: float = 1.25,
        max_shift: float = 0.0,
        split_seed: int = 0,
        transform=None,
        on_bad_sample: OnBadSample = "error",
    ):
        super().__init__(on_bad_sample)
        records = scan_multipie(root)
        test = subject_split([r["subject"] for r in records], test_fraction, split_seed)
        self.records = [r for r in records if (r["subject"] in test) == (split != "train")]
        self.root, self.landmarks_root = Path(root), Path(landmarks_root) if landmarks_root else None
        self.image_size, self.box_scale, self.max_shift, self.transform = (
            image_size,
            box_scale,
            max_shift,
            transform,
        )
        subjects = sorted({r["subject"] for r in records})
        self.identities = {s: i for i, s in enumerate(subjects)}
        if mode == "single":
            self.items = [(i,) for i in range(len(self.records))]
        elif mode == "triplet":
            groups: dict[tuple, dict[str, list[int]]] = {}
            for i, r in enumerate(self.records):
                groups.setdefault((r["subject"], r["session"], r["recording"], r["flash"]), {}).setdefault(
                    r["camera"], []
                ).append(i)
            self.items = []
            for key in sorted(groups):
                g = groups[key]
                left = [i for c in left_cameras for i in g.get(c, [])]
                right = [i for c in right_cameras for i in g.get(c, [])]
                self.items.extend(itertools.product(g.get("05_1", []), left, right))
        else:
            raise ValueError(f"mode must be 'single' or 'triplet', got {mode!r}")

    def _landmarks(self, r: dict) -> np.ndarray | None:
        bases = [self.landmarks_root / r["rel"]] if self.landmarks_root else []
        bases.append(r["image"])
        for base in bases:
            for suffix in (".mat", ".pts", ".txt"):
                if base.with_suffix(suffix).is_file():
                    return read_landmark_file(base.with_suffix(suffix), 68)
        return None

    def _view(self, i: int) -> dict:
        r = self.records[i]
        lm = self._landmarks(r)
        image = load_image_uint8(r["image"])
        if lm is not None:
            shift = random_box_shift(1, self.max_shift) if self.max_shift > 0 else None
            affine = landmark_box_affine(torch.as_tensor(lm)[None], self.image_size, self.box_scale, shift)
        else:
            h, w = image.shape[:2]
            affine = center_scale_affine(
                torch.tensor([[w / 2, h / 2]]), torch.tensor([self.image_size / min(h, w)]), self.image_size
            )
        out = crop_face(image, affine, self.image_size, landmarks68=lm)
        out.update(
            identity=self.identities[r["subject"]],
            yaw=float(CAMERA_YAW.get(r["camera"], 0)),
            path=str(r["image"]),
        )
        return out

    def view_index(self, record: int) -> int:
        """A single image's ``view`` is its camera's index in :data:`CAMERA_YAW`."""
        return list(CAMERA_YAW).index(self.records[record]["camera"])


class MultiPIE(FaceDataModule):
    """Multi-PIE datamodule; see :class:`MultiPIEDataset`.

    Its own arguments are below; the others are :class:`FaceDataModule`'s, except ``p_flip``: a mirrored
    triplet would swap its left and right views. ``landmarks68`` is partial: only images with a landmark
    file have it.

    Args:
        mode: ``"triplet"`` (frontal, left, right) or ``"single"`` images.
        test_fraction: fraction of the subjects in the subject-disjoint ``test`` (= ``val``) split.
        landmarks_root: folder of the 68-point landmark files (mirroring the image tree); default: beside
            the images.
        left_cameras: cameras of a triplet's left view (default ``14_0``, ``13_0``, ``08_0``).
        right_cameras: cameras of a triplet's right view (default ``05_0``, ``04_1``, ``19_0``).
        box_scale: crop side / landmark-box side.
        max_shift: random box shift in training (fraction of the side); none in evaluation.
        split_seed: seed of the subject split.
        batch_size: samples (triplets) per batch (per device).
    """

    provides = batch_keys("image", "affine", "landmarks68", "identity", "yaw", "view", "path", "index")
    partial_keys = ("landmarks68",)

    def __init__(
        self,
        mode: str = "triplet",
        test_fraction: float = 0.1,
        landmarks_root: str | None = None,
        left_cameras: list[str] | None = None,
        right_cameras: list[str] | None = None,
        box_scale: float = 1.25,
        max_shift: float = 0.05,
        split_seed: int = 0,
        batch_size: int = 12,
        **kwargs,
    ):
        if kwargs.get("p_flip"):
            raise ValueError(
                f"MultiPIE: p_flip must be 0 (a mirrored triplet swaps its left and right views), "
                f"got {kwargs['p_flip']}"
            )
        super().__init__(batch_size=batch_size, **kwargs)
        self.options = dict(
            mode=mode,
            test_fraction=test_fraction,
            landmarks_root=landmarks_root,
            box_scale=box_scale,
            split_seed=split_seed,
            left_cameras=tuple(left_cameras or ("14_0", "13_0", "08_0")),
            right_cameras=tuple(right_cameras or ("05_0", "04_1", "19_0")),
        )
        self.max_shift = max_shift

    def raw_dataset(self, split: str, train: bool) -> MultiPIEDataset:
        shift = self.max_shift if train else 0.0
        return MultiPIEDataset(
            self.root, split=split, max_shift=shift, **self.dataset_args(train), **self.options
        )

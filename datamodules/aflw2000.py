"""AFLW2000-3D (test set): ``<root>/image*.jpg`` + ``.mat`` (``pt3d_68`` (3,68), ``Pose_Para``,
``Shape_Para``, ``Exp_Para``; ``pt2d`` holds only 21 AFLW points).

Each sample is the evaluation crop of the protocol: 3DDFA's ``parse_roi_box_from_landmark`` on the
ground-truth 68 landmarks (square on the landmarks' box, enlarged to its diagonal = ``box_scale`` sqrt(2)),
resized to ``image_size``. Keys: ``image``, ``landmarks68`` (x, y of ``pt3d_68`` in the crop),
``landmarks68_3d`` (depth in the same pixel scale), ``params`` {``id``, ``exp``, ``pose`` transformed into the
crop}, ``yaw`` (degrees, ``Pose_Para[1]``; buckets 0-30/30-60/60-90 via :func:`facezoo.data.yaw_bucket`),
``affine`` (original -> crop, to map predictions back), ``path``. Only a test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facezoo.data.align import landmark_box_affine
from facezoo.data.io import FaceDataset, OnBadSample, check_root, load_image_uint8
from facezoo.data.landmarks import read_3ddfa_mat

from ._base import SQRT2, FaceDataModule, batch_keys, crop_face


class AFLW2000Dataset(FaceDataset):
    """AFLW2000-3D samples (see the module docstring)."""

    def __init__(
        self, root, image_size: int = 224, box_scale: float = SQRT2, on_bad_sample: OnBadSample = "error"
    ):
        super().__init__(on_bad_sample)
        root = check_root(root, "AFLW2000-3D")
        self.items = sorted(root.glob("image*.jpg")) or sorted(root.glob("*.jpg"))
        if not self.items:
            raise FileNotFoundError(f"no AFLW2000-3D images (*.jpg) under {root}")
        self.image_size, self.box_scale = image_size, box_scale

    def load(self, index: int) -> dict:
        path: Path = self.items[index]
        mat = read_3ddfa_mat(path.with_suffix(".mat"))
        if "pt3d_68" not in mat:
            from facezoo.data.io import BadSampleError

            raise BadSampleError(path.with_suffix(".mat"), "missing key pt3d_68 (not an AFLW2000-3D .mat?)")
        image = load_image_uint8(path)
        pt3d = mat["pt3d_68"]
        affine = landmark_box_affine(torch.as_tensor(pt3d)[None], self.image_size, self.box_scale)
        out = crop_face(
            image, affine, self.image_size, landmarks68=pt3d[:, :2], landmarks68_3d=pt3d, pose=mat["pose"]
        )
        out["params"] = {
            "id": torch.as_tensor(mat["id"]).float(),
            "exp": torch.as_tensor(mat["exp"]).float(),
            "pose": out.pop("pose"),
        }
        out.update(yaw=float(np.degrees(mat["pose"][1])), path=str(path))
        return out


class AFLW2000(FaceDataModule):
    """AFLW2000-3D test datamodule (``test``/``predict``; also served as ``val``).

    Its own argument is below; the others are :class:`FaceDataModule`'s (an evaluation set: no ``p_flip``,
    ``p_color``).

    Args:
        box_scale: crop side / landmark-box side (3DDFA's sqrt(2)).
    """

    splits = ("test",)
    provides = batch_keys(
        "image",
        "affine",
        "landmarks68",
        "landmarks68_3d",
        "yaw",
        "path",
        "index",
        params=("id", "exp", "pose"),
    )

    def __init__(self, box_scale: float = SQRT2, **kwargs):
        super().__init__(**kwargs)
        self.box_scale = box_scale

    def raw_dataset(self, split: str, train: bool) -> AFLW2000Dataset:
        return AFLW2000Dataset(self.root, self.image_size, self.box_scale, self.on_bad_sample)

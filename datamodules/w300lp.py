"""300W-LP (Zhu et al., CVPR 2016) in its distributed layout, single images or MVF-Net multi-view triplets.

Layout::

    300W_LP/{AFW,HELEN,IBUG,LFPW}[_Flip]/<source>_<k>.jpg + .mat   (k = profiling step; .mat: Pose_Para,
    Shape_Para,
                                                                    Exp_Para, pt2d (2,68), ...)
    300W_LP/landmarks/{AFW,HELEN,IBUG,LFPW}/<source>_<k>_pts.mat   (pts_2d, pts_3d [68,2]; none for _Flip)

Samples are square landmark-box crops (``box_scale`` x the 68 landmarks' box, MVF-Net's random 0-5 % shift in
training) with ``landmarks68``, ``params`` {``id`` [199], ``exp`` [29], ``pose`` [7] transformed into the
crop}, ``yaw`` (degrees, ``Pose_Para[1]``), ``identity`` (= source face: ``<subset>/<source>``, the same
person in the ``_Flip`` folder) and ``view``.

Triplets (``mode="triplet"``, MVF-Net pretraining): all (frontal, left, right) combinations of images of the
same source face, frontal ``|yaw| <= frontal_max_yaw``, left ``yaw <= -side_min_yaw``, right ``yaw >=
side_min_yaw`` (signs as in ``Pose_Para``). 300W-LP's profiling only increases |yaw| on one side of each face;
MVF-Net's 140k triplets need the mirrored ``_Flip`` images for the other side, so the ``_Flip`` copy of a face
joins its group (``triplets_across_flip=True``, our reading of the paper). Views are stacked ``[3,...]`` in
the order frontal, left, right (``view = [0, 1, 2]``). Grouping reads every ``.mat`` once at setup.

Splits: ``train`` = all faces minus ``val_fraction`` of the source faces (identity-disjoint ``val``).
"""

from __future__ import annotations

import itertools
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from facezoo.data.align import landmark_box_affine
from facezoo.data.augment import random_box_shift
from facezoo.data.io import BadSampleError, OnBadSample, check_root, load_image_uint8
from facezoo.data.landmarks import read_3ddfa_mat, read_300wlp_landmarks

from ._base import FaceDataModule, ViewSetDataset, batch_keys, crop_face

SUBSETS = ("AFW", "HELEN", "IBUG", "LFPW")
_NAME = re.compile(r"^(?P<source>.+)_(?P<k>\d+)$")


def scan_300wlp(root: str | Path, subsets=SUBSETS, include_flip: bool = True) -> list[dict]:
    """List ``{"image", "mat", "subset", "flip", "source", "k"}`` for each image with a ``.mat`` beside it."""
    root = check_root(root, "300W-LP")
    items = []
    for subset in subsets:
        for folder in [subset, f"{subset}_Flip"] if include_flip else [subset]:
            for image in sorted((root / folder).glob("*.jpg")):
                m = _NAME.match(image.stem)
                if m is None:
                    raise BadSampleError(image, "file name is not <source>_<k>.jpg")
                items.append(
                    {
                        "image": image,
                        "mat": image.with_suffix(".mat"),
                        "subset": subset,
                        "flip": folder != subset,
                        "source": m["source"],
                        "k": int(m["k"]),
                        "name": image.stem,
                    }
                )
    if not items:
        raise FileNotFoundError(f"no 300W-LP images under {root}/{{{','.join(subsets)}}}[_Flip]/*.jpg")
    return items


class W300LPDataset(ViewSetDataset):
    """300W-LP samples or triplets (see the module docstring).

    Args:
        root: the ``300W_LP`` folder. mode: ``"single"`` or ``"triplet"``. landmark_source: ``"mat"``
            (``pt2d`` of the image's .mat) or ``"landmarks"`` (``landmarks/<subset>/<name>_pts.mat``
            ``pts_3d``; ``_Flip`` images, which have none, are left out). box_scale: crop side / landmark-box
            side. max_shift: random box shift (fraction of the side; 0 = none). split / val_fraction:
            identity-disjoint split.
    """

    def __init__(
        self,
        root,
        mode="single",
        split="train",
        val_fraction=0.0,
        subsets=SUBSETS,
        include_flip=True,
        landmark_source="mat",
        image_size=224,
        box_scale=1.25,
        max_shift=0.0,
        frontal_max_yaw=15.0,
        side_min_yaw=15.0,
        triplets_across_flip=True,
        transform=None,
        on_bad_sample: OnBadSample = "error",
    ):
        super().__init__(on_bad_sample)
        if mode not in ("single", "triplet") or landmark_source not in ("mat", "landmarks"):
            raise ValueError(
                f"need mode single|triplet, landmark_source mat|landmarks; got {mode!r}, {landmark_source!r}"
            )
        self.root = Path(root)
        self.image_size, self.box_scale, self.max_shift, self.transform = (
            image_size,
            box_scale,
            max_shift,
            transform,
        )
        self.landmark_source = landmark_source
        records = scan_300wlp(root, subsets, include_flip and landmark_source == "mat")
        sources = sorted({(r["subset"], r["source"]) for r in records})
        self.identities = {s: i for i, s in enumerate(sources)}
        in_val = {
            s
            for s in sources
            if val_fraction > 0 and zlib.crc32(f"{s[0]}/{s[1]}".encode()) % 10_000 < val_fraction * 10_000
        }
        records = [r for r in records if ((r["subset"], r["source"]) in in_val) == (split == "val")]
        self.records = records
        if mode == "single":
            self.items = [(i,) for i in range(len(records))]
        else:
            self.items = self._triplets(frontal_max_yaw, side_min_yaw, triplets_across_flip)

    def _triplets(self, frontal_max: float, side_min: float, across_flip: bool) -> list[tuple[int, int, int]]:
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(self.records):
            key = (r["subset"], r["source"]) if across_flip else (r["subset"], r["source"], r["flip"])
            groups.setdefault(key, []).append(i)
        triplets = []
        for key in sorted(groups):
            yaws = {
                i: float(np.degrees(read_3ddfa_mat(self.records[i]["mat"])["pose"][1])) for i in groups[key]
            }
            frontal = [i for i, y in yaws.items() if abs(y) <= frontal_max]
            left = [i for i, y in yaws.items() if y <= -side_min]
            right = [i for i, y in yaws.items() if y >= side_min]
            triplets.extend(itertools.product(frontal, left, right))
        if not triplets and self.records:  # reliability: say why, instead of 0 batches and ds[0] IndexError
            yaws = [float(np.degrees(read_3ddfa_mat(r["mat"])["pose"][1])) for r in self.records]
            raise ValueError(
                f"300W-LP root {str(self.root)!r}: mode='triplet' found no (frontal, left, right) triplet of "
                f"one source face among {len(self.records)} images of {len(groups)} faces (frontal |yaw| <= "
                f"{frontal_max}: {sum(abs(y) <= frontal_max for y in yaws)} images, left yaw <= -{side_min}: "
                f"{sum(y <= -side_min for y in yaws)}, right yaw >= {side_min}: "
                f"{sum(y >= side_min for y in yaws)}"
                f"{'' if across_flip else '; triplets_across_flip=False'}); use mode='single' or the full "
                "dataset with its _Flip folders"
            )
        return triplets

    def _view(self, i: int) -> dict:
        r = self.records[i]
        mat = read_3ddfa_mat(r["mat"], landmarks=68)
        if self.landmark_source == "landmarks":
            lm_path = self.root / "landmarks" / r["subset"] / f"{r['name']}_pts.mat"
            lm = read_300wlp_landmarks(lm_path)["pts_3d"]
        else:
            lm = mat["pt2d"]
        image = load_image_uint8(r["image"])
        shift = random_box_shift(1, self.max_shift) if self.max_shift > 0 else None
        affine = landmark_box_affine(torch.as_tensor(lm)[None], self.image_size, self.box_scale, shift)
        out = crop_face(image, affine, self.image_size, landmarks68=lm, pose=mat["pose"])
        params = {
            "id": torch.as_tensor(mat["id"]).float(),
            "exp": torch.as_tensor(mat["exp"]).float(),
            "pose": out.pop("pose"),
        }
        out.update(
            params=params,
            yaw=float(np.degrees(mat["pose"][1])),
            identity=self.identities[(r["subset"], r["source"])],
            path=str(r["image"]),
        )
        return out


class W300LP(FaceDataModule):
    """300W-LP datamodule (single images or MVF-Net triplets).

    Its own arguments are below; the others (``root``, ``shards``, ``batch_size``, ...) are
    :class:`FaceDataModule`'s.

    Args:
        mode: ``"single"`` images or MVF-Net ``"triplet"`` (frontal, left, right) sets.
        val_fraction: fraction of the source faces held out as the identity-disjoint ``val`` split.
        include_flip: also read the mirrored ``<subset>_Flip`` folders.
        landmark_source: ``"mat"`` (``pt2d`` of each image's .mat) or ``"landmarks"`` (``landmarks/``
            ``pts_3d``; ``_Flip`` images have none and are left out).
        box_scale: crop side / landmark-box side.
        max_shift: random box shift in training (fraction of the side; MVF-Net's 0.05); none in evaluation.
        frontal_max_yaw: largest ``|yaw|`` (degrees) of a triplet's frontal view.
        side_min_yaw: smallest ``|yaw|`` (degrees) of a triplet's left and right views.
    """

    provides = batch_keys(
        "image", "affine", "landmarks68", "yaw", "identity", "view", "path", "index",
        params=("id", "exp", "pose"),
    )  # fmt: skip

    def __init__(
        self,
        mode: str = "single",
        val_fraction: float = 0.0,
        include_flip: bool = True,
        landmark_source: str = "mat",
        box_scale: float = 1.25,
        max_shift: float = 0.05,
        frontal_max_yaw: float = 15.0,
        side_min_yaw: float = 15.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.options = dict(
            mode=mode, val_fraction=val_fraction, include_flip=include_flip, landmark_source=landmark_source,
            box_scale=box_scale, frontal_max_yaw=frontal_max_yaw, side_min_yaw=side_min_yaw,
        )  # fmt: skip
        self.max_shift = max_shift

    def raw_dataset(self, split: str, train: bool) -> W300LPDataset:
        split = "val" if split != "train" else "train"
        shift = self.max_shift if train else 0.0
        return W300LPDataset(
            self.root, split=split, max_shift=shift, **self.dataset_args(train), **self.options
        )

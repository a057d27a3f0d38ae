"""VGGFace2: ``<root>/{train,test}/<class>/<image>.jpg`` with identity labels.

Optional files (looked up at ``<root>/identity_meta.csv`` and
``<root>/bb_landmark/loose_{bb,landmark}_<split>.csv``, or given explicitly): the identity table (see
:func:`facezoo.data.read_vggface2_meta` for its quirks), loose boxes and 5-point landmarks. Crops:
Deep3DFace's 5-point alignment when landmarks are known, else a square around the loose box (``box_scale`` x
its longer side). ``identity`` = index of the class in the sorted list of the split's classes (train and test
identities are disjoint in VGGFace2). ``val`` = ``test``.

Training batches are identity-balanced (``p`` identities x ``k`` images, DDP-aware
:class:`facezoo.data.IdentityBalancedSampler`, ``batch_size = p * k``) when ``p`` and ``k`` are given.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facezoo.data.align import center_scale_affine, deep3d_affine
from facezoo.data.io import BadSampleError, FaceDataset, OnBadSample, check_root, load_image_uint8
from facezoo.data.landmarks import read_vggface2_boxes, read_vggface2_landmarks, read_vggface2_meta
from facezoo.data.samplers import IdentityBalancedSampler

from ._base import FaceDataModule, batch_keys, crop_face


class VGGFace2Dataset(FaceDataset):
    """VGGFace2 images of one split (see the module docstring)."""

    def __init__(
        self,
        root,
        split: str = "train",
        meta: str | None = None,
        boxes: str | None = None,
        landmarks: str | None = None,
        image_size: int = 224,
        box_scale: float = 1.3,
        transform=None,
        on_bad_sample: OnBadSample = "error",
    ):
        super().__init__(on_bad_sample)
        root = check_root(root, "VGGFace2")
        folder = check_root(root / split, f"VGGFace2 {split}")
        bbl = root / "bb_landmark"
        meta_path = Path(meta) if meta else root / "identity_meta.csv"
        self.meta = read_vggface2_meta(meta_path) if (meta or meta_path.is_file()) else {}
        box_path = Path(boxes) if boxes else bbl / f"loose_bb_{split}.csv"
        lm_path = Path(landmarks) if landmarks else bbl / f"loose_landmark_{split}.csv"
        self.boxes = read_vggface2_boxes(box_path) if (boxes or box_path.is_file()) else {}
        self.landmarks = read_vggface2_landmarks(lm_path) if (landmarks or lm_path.is_file()) else {}
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if self.meta:
            unknown = [c for c in classes if c not in self.meta]
            if unknown:
                raise BadSampleError(meta_path, f"classes {unknown[:5]} are not in identity_meta.csv")
        self.classes = classes
        self.items = [(p, i) for i, c in enumerate(classes) for p in sorted((folder / c).glob("*.jpg"))]
        if not self.items:
            raise FileNotFoundError(f"no images under {folder}/<class>/*.jpg")
        self.image_size, self.box_scale, self.transform = image_size, box_scale, transform

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]

    def load(self, index: int) -> dict:
        path, label = self.items[index]
        key = f"{path.parent.name}/{path.stem}"
        image = load_image_uint8(path)
        lm5 = self.landmarks.get(key)
        if lm5 is not None:
            affine = deep3d_affine(torch.as_tensor(lm5)[None], target_size=self.image_size)
        else:
            if key in self.boxes:
                x, y, w, h = self.boxes[key].tolist()
            else:  # no box: the whole image (VGGFace2 images are loose face crops already)
                x, y, (h, w) = 0.0, 0.0, image.shape[:2]
            side = max(w, h) * self.box_scale
            affine = center_scale_affine(
                torch.tensor([[x + w / 2, y + h / 2]]),
                torch.tensor([self.image_size / side]),
                self.image_size,
            )
        out = crop_face(image, affine, self.image_size, landmarks5=lm5)
        out.update(identity=label, path=str(path))
        return self.transform(out) if self.transform is not None else out


class VGGFace2(FaceDataModule):
    """VGGFace2 datamodule; ``p``/``k`` switch on P x K identity-balanced training batches.

    Its own arguments are below; the others are :class:`FaceDataModule`'s. ``landmarks5`` is partial: only
    images listed in the loose-landmark file have it.

    Args:
        meta: the identity table (default ``<root>/identity_meta.csv`` when it exists).
        p: identities per training batch (with ``k``; ``batch_size`` is then ``p * k``).
        k: images per identity in a training batch.
        box_scale: crop side / longer side of the loose box (images without landmarks).
    """

    provides = batch_keys("image", "affine", "landmarks5", "identity", "path", "index")
    partial_keys = ("landmarks5",)

    def __init__(
        self,
        meta: str | None = None,
        p: int | None = None, k: int | None = None,
        box_scale: float = 1.3,
        **kwargs,
    ):  # fmt: skip
        if (p is None) != (k is None):
            raise ValueError("VGGFace2: give both p and k (P x K sampling) or neither")
        super().__init__(**kwargs)
        if p:
            self.batch_size = p * k
        self.meta, self.p, self.k, self.box_scale = meta, p, k, box_scale

    def raw_dataset(self, split: str, train: bool) -> VGGFace2Dataset:
        split = "train" if split == "train" else "test"
        return VGGFace2Dataset(
            self.root, split, self.meta, box_scale=self.box_scale, **self.dataset_args(train)
        )

    def train_dataloader(self):
        if self.p is None:
            return super().train_dataloader()
        ds = self.dataset("train")
        labels = ds.labels if hasattr(ds, "labels") else [ds[i]["identity"] for i in range(len(ds))]
        return self._loader("train", IdentityBalancedSampler(labels, self.p, self.k, seed=self.seed))

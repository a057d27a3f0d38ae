"""Shared base of facezoo's LightningDataModules: crop helper, loaders, raw-layout-or-shards switch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset

from facezoo.data.align import crop_pose_300wlp, transform_points, warp_image
from facezoo.data.augment import Augment
from facezoo.data.io import FaceDataset, OnBadSample, ReportingDataLoader, to_tensor
from facezoo.data.sample import collate, stack_views
from facezoo.data.samplers import ResumableDataLoader, ShardedRandomSampler
from facezoo.data.shards import ShardDataset

SQRT2 = math.sqrt(2.0)
#: the ``params`` sub-keys that a horizontal flip removes (a mirrored face is another 3DMM shape).
FLIP_DROPS = ("params.id", "params.exp", "params.tex")


def batch_keys(*keys: str, params: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    """A ``provides`` declaration (see :class:`FaceDataModule`): ``{key: ()}`` for every key, plus
    ``{"params": params}`` when ``params`` names sub-keys.

    Example:
        >>> batch_keys("image", "yaw", params=("id", "pose"))
        {'image': (), 'yaw': (), 'params': ('id', 'pose')}
    """
    out: dict[str, tuple[str, ...]] = dict.fromkeys(keys, ())
    if params:
        out["params"] = tuple(params)
    return out


def key_names(provides: dict[str, tuple[str, ...]]) -> list[str]:
    """Every key of a ``provides`` declaration, sub-keys as ``"<key>.<sub>"`` (the names of
    ``batch["valid"]``).

    Example:
        >>> key_names(batch_keys("image", params=("id",)))
        ['image', 'params', 'params.id']
    """
    return [n for k, subs in provides.items() for n in (k, *(f"{k}.{s}" for s in subs))]


def check_loader_sizes(image_size: int, batch_size: int, num_workers: int) -> None:
    """Reject sizes no loader can serve, naming the argument (a 0 crop would fail deep in a warp).

    Example:
        >>> check_loader_sizes(image_size=0, batch_size=4, num_workers=0)
        Traceback (most recent call last):
        ...
        ValueError: image_size: expected an integer >= 8 (pixels), got 0
    """
    for name, value, least in (
        ("image_size", image_size, 8),
        ("batch_size", batch_size, 1),
        ("num_workers", num_workers, 0),
    ):
        if isinstance(value, bool) or int(value) != value or value < least:
            unit = " (pixels)" if name == "image_size" else ""
            raise ValueError(f"{name}: expected an integer >= {least}{unit}, got {value!r}")


def crop_face(
    image: np.ndarray,
    affine: torch.Tensor,
    size: int,
    landmarks68: np.ndarray | None = None,
    landmarks5: np.ndarray | None = None,
    landmarks68_3d: np.ndarray | None = None,
    pose: np.ndarray | None = None,
) -> dict[str, Any]:
    """Warp ``image [H,W,3] uint8`` with ``affine [1,2,3]`` into a ``size`` square and carry the labels along:
    landmarks (crop pixels), 3D landmarks (depth scaled), the 300W-LP pose (:func:`crop_pose_300wlp`)."""
    h = image.shape[0]
    img = to_tensor(image)[None]
    out: dict[str, Any] = {
        "image": warp_image(img, affine, size)[0].clamp_(0, 1),
        "affine": affine[0].clone(),
    }
    for key, pts in (
        ("landmarks68", landmarks68),
        ("landmarks5", landmarks5),
        ("landmarks68_3d", landmarks68_3d),
    ):
        if pts is not None:
            out[key] = transform_points(torch.as_tensor(pts, dtype=torch.float64)[None], affine)[0].float()
    if pose is not None:
        out["pose"] = crop_pose_300wlp(torch.as_tensor(pose, dtype=torch.float64)[None], affine, h, size)[
            0
        ].float()
    return out


class ViewSetDataset(FaceDataset):
    """A dataset whose items are tuples of record indices: one index is a single image, several a multi-view
    set (:func:`facezoo.data.stack_views`, views in the tuple's order). Subclasses implement
    ``_view(record) -> Sample`` and may override :meth:`view_index` (the ``view`` of a single image; 0 by
    default); ``transform`` (augmentation) applies to the whole sample."""

    transform = None

    def _view(self, record: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def view_index(self, record: int) -> int:
        return 0

    def load(self, index: int) -> dict:
        records = self.items[index]
        views = [self._view(i) for i in records]
        if len(views) == 1:
            sample = views[0]
            sample["view"] = self.view_index(records[0])
        else:
            sample = stack_views(views)
        return self.transform(sample) if self.transform is not None else sample


class FaceDataModule(LightningDataModule):
    """Common init args and loaders. Subclasses implement ``raw_dataset(split, train) -> Dataset``.

    Subclasses declare only their own ``__init__`` arguments (or a default of their own, e.g. a batch size)
    and pass ``**kwargs`` up: jsonargparse follows them here, so ``--data.help <Class>`` and configs see the
    arguments below with these docs and defaults.

    What a datamodule yields (class attributes, or properties where the options decide; the methods check
    them at ``setup``):

    * ``protocol``: the evaluation protocol that ``validate``/``test`` run
      (:mod:`facezoo.methods.protocols`; ``"reconstruction"`` by default).
    * ``provides``: ``{batch key: sub-keys}`` of its batches (:class:`facezoo.data.Batch`); the sub-keys are
      those of ``params`` (``()`` for every other key), see :func:`batch_keys`. The bookkeeping keys
      ``skipped`` and ``valid`` of :func:`facezoo.data.collate` are not listed.
    * ``partial``: the keys that a sample may lack, named as in ``batch["valid"]`` (``"landmarks68"``,
      ``"params.id"``): labels that exist for some files only, or ``params`` ``id``/``exp``/``tex``, which
      :func:`facezoo.data.hflip_sample` drops when ``p_flip > 0``. In a batch where some samples have one,
      ``collate`` zero-fills the others and ``batch["valid"][key]`` (bool ``[B]``) marks the real rows; a
      batch where no sample has it lacks the key.

    Args:
        root: dataset root in its distributed layout.
        shards: folder written by ``facezoo prepare`` (``<shards>/<split>/manifest.json``); when given,
            samples are read from the shards instead of ``root``.
        batch_size: samples per batch (per device).
        num_workers: DataLoader workers.
        image_size: side of the square crops in pixels.
        on_bad_sample: ``"error"`` (raise, naming the file) or ``"skip"`` (count and report at epoch end).
        p_flip: train-time horizontal-flip probability.
        p_color: train-time colour-jitter probability.
        seed: sampler seed (epoch-dependent permutations, identical on all ranks).
    """

    #: the splits of the dataset; an evaluation set has only ``("test",)`` (every split reads it).
    splits: tuple[str, ...] = ("train", "val", "test")
    protocol: str = "reconstruction"
    provides: dict[str, tuple[str, ...]] = {}
    #: keys of ``provides`` that samples may lack whatever the options (see :attr:`partial`).
    partial_keys: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | None = None,
        shards: str | None = None,
        batch_size: int = 32,
        num_workers: int = 2,
        image_size: int = 224,
        on_bad_sample: OnBadSample = "error",
        p_flip: float = 0.0,
        p_color: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        name = type(self).__name__
        if root is None and shards is None:
            raise ValueError(f"{name}: give root (raw layout) or shards (facezoo prepare output)")
        if "train" not in self.splits and (p_flip or p_color):
            raise ValueError(
                f"{name}: p_flip, p_color are train-time augmentation, and {name} has no training split "
                f"(got p_flip={p_flip}, p_color={p_color})"
            )
        check_loader_sizes(image_size, batch_size, num_workers)
        self.root, self.shards = root, shards
        self.batch_size, self.num_workers, self.image_size = batch_size, num_workers, image_size
        self.on_bad_sample, self.seed = on_bad_sample, seed
        self.augment = Augment(p_flip=p_flip, p_color=p_color) if (p_flip or p_color) else None
        self._datasets: dict[str, Dataset] = {}

    @property
    def partial(self) -> tuple[str, ...]:
        """The keys of ``provides`` that samples may lack (class docstring)."""
        flipped = FLIP_DROPS if self.augment is not None and self.augment.p_flip > 0 else ()
        return tuple(k for k in key_names(self.provides) if k in self.partial_keys or k in flipped)

    def raw_dataset(self, split: str, train: bool) -> Dataset:  # pragma: no cover - abstract
        raise NotImplementedError

    def dataset_args(self, train: bool) -> dict[str, Any]:
        """Arguments every raw-layout dataset takes: crop size, bad-sample policy, augmentation (train)."""
        return dict(
            image_size=self.image_size,
            transform=self.augment if train else None,
            on_bad_sample=self.on_bad_sample,
        )

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (cached), from shards when ``shards`` is set; an evaluation set (``splits
        = ("test",)``) serves its test split for every split."""
        if self.splits == ("test",):
            split = "test"
        if split not in self._datasets:
            train = split == "train"
            transform = self.augment if train else None
            if self.shards is not None:
                self._datasets[split] = ShardDataset(
                    Path(self.shards) / split, transform=transform, on_bad_sample=self.on_bad_sample
                )
            else:
                self._datasets[split] = self.raw_dataset(split, train)
        return self._datasets[split]

    def _loader(self, split: str, sampler=None, shuffle_train: bool = True) -> ReportingDataLoader:
        ds = self.dataset(split)
        if split == "train" and sampler is None and shuffle_train:
            sampler = ShardedRandomSampler(ds, seed=self.seed)
        loader = ResumableDataLoader if split == "train" else ReportingDataLoader  # resumable mid-epoch
        return loader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate,
            drop_last=split == "train",
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self):
        if "train" not in self.splits:
            raise RuntimeError(f"{type(self).__name__} is an evaluation set: it has no training split")
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")

    def predict_dataloader(self):
        return self._loader("test")

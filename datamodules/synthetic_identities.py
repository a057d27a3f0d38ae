"""``SyntheticIdentities``: rendered faces with identity labels, several images per identity, part of them
with 3D labels (SIR's mixed-label training data without any download; ``zoo/data/synthetic-identities.yaml``).

Identity ``i`` has ``images_per_identity`` images (one :class:`SyntheticFaces` identity set: the same shape
and albedo; expression, pose, light vary). Flat index ``n`` is image ``n % K`` of identity ``n // K``; the
sample is a single image with ``identity = identity_offset + i`` and ``view``. The first
``round(labelled_fraction x num_identities)`` identities keep their 3D labels (``landmarks68``,
``landmarks5``, ``params``, ``yaw``); the others carry only the identity label (like VGGFace2), so a batch
mixes both and ``batch["valid"]`` marks the rows.

Training batches are P x K identity groups (:class:`facezoo.data.IdentityBalancedSampler`) when ``p`` and
``k`` are given, else shuffled single images; validation, test and prediction use the held-out identities of
the ``val``/``test``/``predict`` splits, every image with all labels (the ``reconstruction`` protocol).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from facezoo.data.sample import collate
from facezoo.data.samplers import IdentityBalancedSampler, ResumableDataLoader, ShardedRandomSampler

from ._base import check_loader_sizes, key_names
from .synthetic import SyntheticFaces

#: the 3D labels an unlabelled identity's images lack.
LABEL_KEYS = ("landmarks68", "landmarks5", "params", "yaw")


class SyntheticIdentityDataset(Dataset):
    """One split of :class:`SyntheticIdentities`, indexed by image (module docstring)."""

    def __init__(self, dm: SyntheticIdentities, split: str) -> None:
        self.dm, self.split = dm, split
        self.sets = dm.faces.dataset(split)
        self.k = dm.images_per_identity
        self.n_labelled = dm.n_labelled if split == "train" else len(self.sets)

    def __len__(self) -> int:
        return len(self.sets) * self.k

    @property
    def labels(self) -> list[int]:
        """Identity label of every index (for the P x K sampler)."""
        return [n // self.k for n in range(len(self))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        n = len(self)
        for i in indices:
            if not 0 <= int(i) < n:
                raise IndexError(f"SyntheticIdentities[{self.split}]: index {i} out of range [0, {n})")
        wanted = sorted({int(i) // self.k for i in indices})
        sets = dict(zip(wanted, self.sets.__getitems__(wanted), strict=True))
        return [self._image(sets[int(i) // self.k], int(i)) for i in indices]

    def _image(self, s: dict[str, Any], index: int) -> dict[str, Any]:
        ident, view = divmod(index, self.k)
        out: dict[str, Any] = {}
        for key, value in s.items():
            if self.k == 1:  # SyntheticFaces gives single images without a view axis
                if key not in ("identity", "index", "view"):
                    out[key] = value
            elif key == "params":
                out[key] = {k: v[view] for k, v in value.items()}
            elif key == "yaw":
                out[key] = float(value[view])
            elif key in ("identity", "index", "view"):
                continue
            else:
                out[key] = value[view]
        out.update(identity=self.dm.identity_offset + ident, view=view, index=index)
        if ident >= self.n_labelled:
            for key in LABEL_KEYS:
                out.pop(key, None)
        return out


class SyntheticIdentities(LightningDataModule):
    """Rendered identities, ``images_per_identity`` images each, a fraction with 3D labels (module docstring).

    Args:
        morphable_model, image_size, yaw_range, pitch_range, roll_range, id_scale, exp_scale, tex_scale,
            light_scale, background, occluder_prob, seed, cache, renderer_backend: as :class:`SyntheticFaces`.
        num_identities: training identities (labels ``identity_offset + 0 .. num_identities - 1``).
        images_per_identity: images per identity ``K``.
        labelled_fraction: fraction of the training identities whose images keep their 3D labels.
        p, k: identities and images per identity of a training batch (``batch_size = p * k``); ``None``: plain
            shuffled batches of ``batch_size``.
        batch_size: evaluation batch size (and the training one without ``p``/``k``).
        num_val, num_test, num_predict: held-out identities per evaluation split.
        identity_offset: added to every identity label.
        num_workers: DataLoader workers.

    Example:
        >>> dm = SyntheticIdentities("procedural:600:8:4:8", image_size=32, num_identities=4,
        ...                          images_per_identity=3, labelled_fraction=0.5, p=2, k=3)
        >>> batch = next(iter(dm.train_dataloader()))
        >>> ids = batch["identity"].view(2, 3)          # 2 identities x 3 images, in order
        >>> bool((ids == ids[:, :1]).all()), bool(ids[0, 0] != ids[1, 0])
        (True, True)
    """

    protocol = "reconstruction"
    provides = SyntheticFaces.provides  # the same rendered faces, grouped by identity

    def __init__(
        self,
        morphable_model: str = "procedural",
        image_size: int = 224,
        num_identities: int = 64,
        images_per_identity: int = 4,
        labelled_fraction: float = 0.0,
        p: int | None = 4, k: int | None = 4,
        batch_size: int = 16,
        num_val: int = 8, num_test: int = 8, num_predict: int = 2,
        yaw_range: float = 45.0, pitch_range: float = 15.0, roll_range: float = 10.0,
        id_scale: float = 1.0, exp_scale: float = 0.7, tex_scale: float = 0.5, light_scale: float = 0.12,
        background: str = "smooth",
        occluder_prob: float = 0.0,
        identity_offset: int = 0,
        seed: int = 0,
        cache: bool = True,
        num_workers: int = 0,
        renderer_backend: str = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        if (p is None) != (k is None):
            raise ValueError("SyntheticIdentities: give both p and k (P x K batches) or neither")
        if num_identities < 1 or images_per_identity < 1:
            raise ValueError(
                "num_identities and images_per_identity: expected >= 1, got "
                f"{num_identities}, {images_per_identity}"
            )
        check_loader_sizes(image_size, batch_size, num_workers)  # now, not in the lazy SyntheticFaces
        if not 0.0 <= labelled_fraction <= 1.0:
            raise ValueError(f"labelled_fraction: expected a fraction in [0, 1], got {labelled_fraction}")
        self.morphable_model, self.image_size = morphable_model, int(image_size)
        self.images_per_identity = int(images_per_identity)
        self.n_labelled = round(labelled_fraction * num_identities)
        self.labelled_fraction = float(labelled_fraction)
        self.p, self.k = p, k
        self.batch_size = int(p * k) if p else int(batch_size)
        self.eval_batch_size = int(batch_size)
        self.identity_offset, self.seed, self.num_workers = int(identity_offset), int(seed), int(num_workers)
        self._faces_args = dict(
            morphable_model=morphable_model, image_size=image_size, batch_size=1, num_train=num_identities,
            num_val=num_val, num_test=num_test, num_predict=num_predict, set_size=self.images_per_identity,
            set_mode="identity", yaw_range=yaw_range, pitch_range=pitch_range, roll_range=roll_range,
            id_scale=id_scale, exp_scale=exp_scale, tex_scale=tex_scale, light_scale=light_scale,
            background=background, occluder_prob=occluder_prob, seed=seed, cache=cache,
            renderer_backend=renderer_backend,
        )  # fmt: skip
        self._faces: SyntheticFaces | None = None
        self._datasets: dict[str, SyntheticIdentityDataset] = {}

    @property
    def faces(self) -> SyntheticFaces:
        """The :class:`SyntheticFaces` identity sets behind the images (built lazily: built inside this
        ``__init__``, its ``save_hyperparameters`` would read our frame's arguments)."""
        if self._faces is None:
            self._faces = SyntheticFaces(**self._faces_args)
        return self._faces

    @property
    def partial(self) -> tuple[str, ...]:
        """The 3D labels when some training identities lack them (named as in ``batch["valid"]``)."""
        if self.n_labelled >= len(self.faces.dataset("train")):
            return ()
        drop = {k: v for k, v in self.provides.items() if k in LABEL_KEYS}
        return tuple(key_names(drop))

    @property
    def model(self):
        return self.faces.model

    def dataset(self, split: str) -> SyntheticIdentityDataset:
        if split not in self._datasets:
            self._datasets[split] = SyntheticIdentityDataset(self, split)
        return self._datasets[split]

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        if self.p:
            sampler = IdentityBalancedSampler(ds.labels, self.p, self.k, seed=self.seed)
        else:
            sampler = ShardedRandomSampler(ds, seed=self.seed)
        return ResumableDataLoader(
            ds, batch_size=self.batch_size, sampler=sampler, drop_last=True, num_workers=self.num_workers,
            collate_fn=collate, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def _eval(self, split: str) -> DataLoader:
        return DataLoader(
            self.dataset(split), batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers,
            collate_fn=collate, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return self._eval("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval("predict")

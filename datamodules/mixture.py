"""Mixtures of datasets (SIR: VGGFace2 identities + 300W-LP landmarks).

``Mixture`` draws every training sample from member i with probability ``probabilities[i]`` (default:
proportional to the members' sizes; SIR's rule is :func:`facezoo.data.sir_probabilities`). Samples of
different members carry different keys: :func:`facezoo.data.collate` zero-fills the missing ones and
``batch["valid"][key]`` marks the real rows. All members must use the same ``image_size``. Validation and test
loaders are those of the first member that has them.
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule
from torch.utils.data import ConcatDataset

from facezoo.data.io import ReportingDataLoader
from facezoo.data.sample import collate
from facezoo.data.samplers import MixtureSampler


class Mixture(LightningDataModule):
    """Args:
    datamodules: the member datamodules (any facezoo datamodule: they provide ``dataset(split)``).
    probabilities: draw probability per member (normalised); None = proportional to size.
    num_samples: draws per epoch over all ranks (default: the members' total size).
    batch_size, num_workers, seed: loader settings.
    """

    def __init__(
        self,
        datamodules: list[LightningDataModule],
        probabilities: list[float] | None = None,
        num_samples: int | None = None,
        batch_size: int = 32,
        num_workers: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        if not datamodules:
            raise ValueError("Mixture: datamodules must not be empty")
        if probabilities is not None and len(probabilities) != len(datamodules):
            raise ValueError(
                f"Mixture: {len(probabilities)} probabilities for {len(datamodules)} datamodules"
            )
        self.members, self.probabilities = list(datamodules), probabilities
        self.num_samples, self.batch_size, self.num_workers, self.seed = (
            num_samples,
            batch_size,
            num_workers,
            seed,
        )

    def train_dataloader(self):
        datasets = [m.dataset("train") for m in self.members]
        sizes = [len(d) for d in datasets]
        probs = self.probabilities if self.probabilities is not None else sizes
        sampler = MixtureSampler(sizes, probs, self.num_samples, seed=self.seed)
        return ReportingDataLoader(
            ConcatDataset(datasets),
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            drop_last=True,
            persistent_workers=self.num_workers > 0,
        )

    def _first(self, name: str):
        for m in self.members:
            try:
                return getattr(m, name)()
            except (RuntimeError, FileNotFoundError, NotImplementedError):
                continue
        raise RuntimeError(f"Mixture: no member provides {name}")

    def val_dataloader(self):
        return self._first("val_dataloader")

    def test_dataloader(self):
        return self._first("test_dataloader")

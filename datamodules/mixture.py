"""Mixtures of datasets (SIR: VGGFace2 identities + 300W-LP landmarks).

``Mixture`` builds its training batches from its members' *own* training batches: each member's
``train_dataloader()`` says which dataset indices make one of its batches (its sampler, batch size and
``drop_last``: VGGFace2's P x K identity groups, a 300W-LP shuffle...). Every training batch of the mixture
concatenates ``blocks`` such member batches, each drawn from member i with probability ``probabilities[i]``
(default: proportional to the members' sizes; SIR's rule is :func:`facezoo.data.sir_probabilities`), so a
member's grouping is never split. With ``blocks=1`` the members' batches are interleaved; with more, one
batch mixes members.

Mixed batches: samples of different members carry different keys. :func:`facezoo.data.collate` zero-fills
the missing ones (``identity``/``view``/``index`` with -1, floats with NaN) and ``batch["valid"][key]`` (bool
``[B]``, ``params`` sub-keys as ``"params.<name>"``, e.g. ``"landmarks68"``, ``"identity"``,
``"params.id"``) marks the rows that are real labels; a key that every row has gets no ``valid`` entry. A
loss must read only the valid rows of a key listed in ``partial``.

``drop`` removes labels a member has but the training must not use, per member (SIR: "We use only the 300W-LP
landmark label", so 300W-LP's ``params`` and its source-face ``identity`` are dropped and its rows never enter
the identity terms): the dropped keys are absent from that member's samples, so they are zero-filled and
marked invalid like any missing label, and ``provides``/``partial`` say so.

All members must use the same ``image_size``. Validation, test and prediction use member ``eval_member``
(its loaders, ``protocol`` and protocol options).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset, DistributedSampler

from facezoo.data.io import ReportingDataLoader
from facezoo.data.sample import collate
from facezoo.data.samplers import sir_probabilities

from ._base import key_names


class _Blocks(Dataset):
    """The members' datasets, indexed by whole batches: ``blocks[[(member, indices), ...]]`` -> one collated
    batch (a member dataset's ``__getitems__``, e.g. SyntheticFaces' batched rendering, is used when it has
    one)."""

    def __init__(self, datasets: Sequence[Dataset], drop: Sequence[Sequence[str]] | None = None):
        self.datasets = list(datasets)
        self.drop = [tuple(d) for d in drop] if drop else [()] * len(self.datasets)

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, blocks: list[tuple[int, list[int]]]) -> dict:
        samples: list = []
        for member, indices in blocks:
            ds = self.datasets[member]
            many = getattr(ds, "__getitems__", None)
            got = many(indices) if many is not None else [ds[i] for i in indices]
            drop = self.drop[member]
            samples.extend([_without(s, drop) for s in got] if drop else got)
        return collate(samples)


def _without(sample: dict, keys: Sequence[str]) -> dict:
    """``sample`` without ``keys`` (``"params.<name>"`` removes one ``params`` entry)."""
    out = dict(sample)
    for key in keys:
        head, _, sub = key.partition(".")
        if sub and isinstance(out.get(head), dict):
            out[head] = {k: v for k, v in out[head].items() if k != sub}
        elif not sub:
            out.pop(key, None)
    return out


def _as_is(batch: dict) -> dict:
    return batch


class MixtureBlockSampler(DistributedSampler):
    """Yields one training batch per step as ``[(member, dataset indices), ...]`` (``blocks`` member batches,
    each from member i with probability ``probabilities[i]``).

    The member sequence comes from one generator seeded with ``seed + epoch`` (the same on every rank); each
    member batch is the next one of that member's own batch sampler (rank-aware for facezoo's samplers, so
    ranks never share a sample). A member that runs out starts a new pass (its sampler's epoch advanced).
    A ``DistributedSampler`` so that Lightning keeps it as it is; it does not split anything across ranks
    itself (``num_replicas=1``): every rank steps through the same ``num_batches``.
    """

    def __init__(
        self,
        batch_samplers: Sequence,
        probabilities: Sequence[float],
        num_batches: int,
        blocks: int = 1,
        seed: int = 0,
    ):
        probs = torch.as_tensor(list(probabilities), dtype=torch.float64)
        if len(probs) != len(batch_samplers) or (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(
                f"Mixture: probabilities must be one >= 0 value per member with a positive sum, got "
                f"{list(probabilities)} for {len(batch_samplers)} members"
            )
        weights = probs.tolist()
        empty = [i for i, b in enumerate(batch_samplers) if weights[i] > 0 and len(b) == 0]
        if empty:
            raise ValueError(f"Mixture: member(s) {empty} have a positive probability but no training batch")
        if num_batches < 1 or blocks < 1:
            raise ValueError(f"Mixture: num_batches and blocks must be >= 1, got {num_batches}, {blocks}")
        super().__init__(range(num_batches), num_replicas=1, rank=0, shuffle=False, seed=seed)
        self.batch_samplers, self.probs = list(batch_samplers), probs / probs.sum()
        self.num_batches, self.blocks = int(num_batches), int(blocks)

    def _member_pass(self, member: int, n: int) -> Iterator[list[int]]:
        sampler = getattr(self.batch_samplers[member], "sampler", None)
        if hasattr(sampler, "set_epoch"):  # distinct and reproducible: pass n of this epoch
            sampler.set_epoch(self.epoch * (self.num_batches * self.blocks + 1) + n)
        return iter(self.batch_samplers[member])

    def __iter__(self) -> Iterator[list[tuple[int, list[int]]]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.probs, self.num_batches * self.blocks, replacement=True, generator=g)
        passes = [0] * len(self.batch_samplers)
        streams: list[Iterator | None] = [None] * len(self.batch_samplers)
        step: list[tuple[int, list[int]]] = []
        for m in draws.tolist():
            indices = next(streams[m], None) if streams[m] is not None else None
            if indices is None:  # first use or used up: a new pass over the member
                streams[m] = self._member_pass(m, passes[m])
                passes[m] += 1
                indices = next(streams[m])
            step.append((m, list(indices)))
            if len(step) == self.blocks:
                yield step
                step = []

    def __len__(self) -> int:
        return self.num_batches


class Mixture(LightningDataModule):
    """Training batches made of the members' own batches (module docstring).

    Args:
        datamodules: the member datamodules (any datamodule whose ``train_dataloader()`` is a map-style
            ``DataLoader`` with a batch size; facezoo's are).
        probabilities: draw probability of a member batch, per member (normalised); None = proportional to
            the members' dataset sizes.
        blocks: member batches concatenated into one training batch.
        num_batches: training batches per epoch (default: the members' training batches per epoch, summed,
            divided by ``blocks``).
        eval_member: the member whose validation, test and predict loaders, ``protocol`` and protocol
            options the mixture uses.
        num_workers: DataLoader workers of the training loader.
        seed: seed of the member draws (the members' samplers keep their own seeds).
        mixing: how ``probabilities=None`` is filled: ``"sizes"`` (proportional to the members' dataset sizes)
            or ``"sir"`` (SIR's Eq. 22 for two members ``[recognition, reconstruction]``: the recognition
            member is drawn with ``P = N_recon / (N_recog + N_recon)``,
            :func:`facezoo.data.sir_probabilities`).
        drop: per member, batch keys removed from its training samples (``"params"``, ``"params.id"``,
            ``"identity"``...; module docstring); ``None`` keeps everything.
    """

    def __init__(
        self,
        datamodules: list[LightningDataModule],
        probabilities: list[float] | None = None,
        blocks: int = 1,
        num_batches: int | None = None,
        eval_member: int = 0,
        num_workers: int = 2,
        seed: int = 0,
        drop: list[list[str]] | None = None,
        mixing: str = "sizes",
    ):
        super().__init__()
        if mixing not in ("sizes", "sir") or (mixing == "sir" and len(datamodules) != 2):
            raise ValueError(
                f"Mixture: mixing must be 'sizes' or 'sir' (two members: recognition, reconstruction), got "
                f"{mixing!r} for {len(datamodules)} member(s)"
            )
        if drop is not None and len(drop) != len(datamodules):
            raise ValueError(
                f"Mixture: drop needs one list of keys per member, got {len(drop)} for {len(datamodules)}"
            )
        if not datamodules:
            raise ValueError("Mixture: datamodules must not be empty")
        if probabilities is not None and len(probabilities) != len(datamodules):
            raise ValueError(
                f"Mixture: {len(probabilities)} probabilities for {len(datamodules)} datamodules"
            )
        if not 0 <= eval_member < len(datamodules):
            raise ValueError(f"Mixture: eval_member must be in [0, {len(datamodules)}), got {eval_member}")
        sizes = [(type(m).__name__, getattr(m, "image_size", None)) for m in datamodules]
        if len({s for _, s in sizes if s is not None}) > 1:
            raise ValueError(f"Mixture: the members must share one image_size, got {sizes}")
        self.members, self.probabilities = list(datamodules), probabilities
        self.blocks, self.num_batches, self.eval_member = blocks, num_batches, eval_member
        self.num_workers, self.seed = num_workers, seed
        self.drop = [list(d) for d in drop] if drop is not None else None
        self.mixing = mixing

    # -- what it yields: the union of the members' keys; a key some members lack is partial
    @property
    def eval_datamodule(self) -> LightningDataModule:
        return self.members[self.eval_member]

    @property
    def protocol(self) -> str:
        return getattr(self.eval_datamodule, "protocol", "reconstruction")

    @property
    def protocol_options(self) -> dict:
        return dict(getattr(self.eval_datamodule, "protocol_options", {}) or {})

    @property
    def provides(self) -> dict[str, tuple[str, ...]] | None:
        """The union of the members' ``provides`` (None when a member declares none)."""
        declared = [self._member_provides(i) for i in range(len(self.members))]
        if any(p is None for p in declared):
            return None
        out: dict[str, tuple[str, ...]] = {}
        for p in declared:
            for key, subs in p.items():
                out[key] = tuple(dict.fromkeys((*out.get(key, ()), *subs)))
        return out

    @property
    def partial(self) -> tuple[str, ...]:
        """Keys that some member lacks or declares partial (named as in ``batch["valid"]``)."""
        provides = self.provides
        if provides is None:
            return ()
        names = [set(key_names(self._member_provides(i))) for i in range(len(self.members))]
        member_partial = {k for m in self.members for k in getattr(m, "partial", ())}
        return tuple(k for k in key_names(provides) if k in member_partial or not all(k in n for n in names))

    def _member_provides(self, i: int) -> dict[str, tuple[str, ...]] | None:
        """Member ``i``'s ``provides`` without its ``drop`` keys."""
        p = getattr(self.members[i], "provides", None)
        drop = set(self.drop[i]) if p is not None and self.drop else set()
        if not drop:
            return p
        out = {}
        for key, subs in p.items():
            if key in drop:
                continue
            out[key] = tuple(s for s in subs if f"{key}.{s}" not in drop)
        return out

    # -- hooks and loaders
    def prepare_data(self) -> None:
        for m in self.members:
            m.prepare_data()

    def setup(self, stage: str) -> None:
        for m in self.members:
            m.setup(stage)

    def dataset(self, split: str) -> Dataset:
        """The eval member's dataset of an evaluation ``split`` (what the protocol runners read)."""
        if split == "train":
            raise ValueError(
                "Mixture: training reads every member's dataset, see datamodules[i].dataset('train')"
            )
        return self.eval_datamodule.dataset(split)

    def train_dataloader(self) -> ReportingDataLoader:
        loaders = [m.train_dataloader() for m in self.members]
        for m, loader in zip(self.members, loaders, strict=True):
            if getattr(loader, "batch_sampler", None) is None:
                raise ValueError(f"Mixture: {type(m).__name__}'s training loader has no batch sampler")
        batch_samplers = [loader.batch_sampler for loader in loaders]
        sizes = [len(loader.dataset) for loader in loaders]
        probs = self.probabilities
        if probs is None:
            probs = list(sir_probabilities(*sizes)) if self.mixing == "sir" else sizes
        num_batches = self.num_batches or max(1, sum(len(b) for b in batch_samplers) // self.blocks)
        sampler = MixtureBlockSampler(batch_samplers, probs, num_batches, self.blocks, self.seed)
        return ReportingDataLoader(
            _Blocks([loader.dataset for loader in loaders], self.drop),
            batch_size=None,  # each item is a whole, collated batch
            sampler=sampler,
            collate_fn=_as_is,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self):
        return self.eval_datamodule.val_dataloader()

    def test_dataloader(self):
        return self.eval_datamodule.test_dataloader()

    def predict_dataloader(self):
        return self.eval_datamodule.predict_dataloader()

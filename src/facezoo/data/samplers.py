"""DDP-aware training samplers. All derive from ``torch.utils.data.DistributedSampler`` so that Lightning
(``use_distributed_sampler=True``) keeps them as they are instead of wrapping them, and all take
``num_replicas``/``rank`` explicitly or from ``torch.distributed`` when it is initialised (1/0 otherwise).

Training samplers never duplicate a sample across ranks within an epoch: the per-epoch permutation is shared
(``seed + epoch``), truncated to a multiple of the world size and dealt out. Call ``set_epoch`` (Lightning
does).

Resuming mid-epoch (a run killed at step k and restarted from its last checkpoint) continues the same
order: every sampler has ``state_dict()`` / ``load_state_dict()`` (epoch, seed, world size and the position
in the epoch), and :class:`ResumableDataLoader` (the training loader of facezoo's datamodules) reports how
many
batches it has handed out. Lightning saves a loader that has ``state_dict`` / ``load_state_dict`` in the
checkpoint (``loops.fit_loop.state_dict.combined_loader``) and restores it before the first batch of the
resumed
run, so the resumed epoch yields exactly the batches the interrupted one had not reached. Positions are kept
as a prefix of the epoch's *global* order (ranks are dealt round-robin), so a run resumed on another number of
devices skips what was seen in total (up to a rounding of less than one sample per rank).

Evaluation loaders are plain sequential loaders: under DDP Lightning wraps them in a ``DistributedSampler``
that *pads* the last batch by repeating samples, so a few samples are evaluated twice. Every sample carries
``index``; metrics that need exact counts must de-duplicate by it or evaluate on one device.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from facezoo.data.io import ReportingDataLoader


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    initialised = dist.is_available() and dist.is_initialized()
    n = num_replicas if num_replicas is not None else (dist.get_world_size() if initialised else 1)
    r = rank if rank is not None else (dist.get_rank() if initialised else 0)
    if not 0 <= r < n:
        raise ValueError(f"rank must be in [0, {n}), got {r}")
    return n, r


class _Base(DistributedSampler):
    """Shared by the training samplers: the epoch's order comes from ``_epoch_order()``; ``__iter__`` starts
    it at the resume position once (see the module docstring) and from the beginning in every later epoch."""

    def __init__(self, dataset, num_replicas: int | None, rank: int | None, seed: int):
        n, r = _world(num_replicas, rank)
        super().__init__(dataset, num_replicas=n, rank=r, shuffle=True, seed=seed, drop_last=True)
        self._resume: tuple[int, int] | None = None  # (epoch, per-rank start) pending for one pass

    def _epoch_order(self) -> Iterator[int]:
        return super().__iter__()

    def __iter__(self) -> Iterator[int]:
        order = list(self._epoch_order())
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
        self._resume = None
        return iter(order[start:])

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self._resume is not None and self._resume[0] != epoch:
            self._resume = None  # the interrupted epoch was complete: the new one starts at 0

    def state_dict(self, position: int = 0) -> dict[str, Any]:
        """``{"epoch", "seed", "num_replicas", "global_position"}``: ``position`` is the number of this rank's
        indices of the current epoch already used (:class:`ResumableDataLoader` passes it)."""
        return {
            "epoch": int(self.epoch),
            "seed": int(self.seed),
            "num_replicas": int(self.num_replicas),
            "global_position": int(position) * int(self.num_replicas),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch at the saved position (the next ``__iter__`` of that epoch only)."""
        missing = {"epoch", "seed", "num_replicas", "global_position"} - set(state)
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: state lacks {sorted(missing)}")
        if int(state["seed"]) != self.seed:
            warnings.warn(
                f"{type(self).__name__}: resuming with seed {self.seed} from a checkpoint made with seed "
                f"{state['seed']}: the rest of the interrupted epoch follows another order",
                stacklevel=2,
            )
        self.epoch = int(state["epoch"])
        self._resume = (self.epoch, int(state["global_position"]) // self.num_replicas)


class ShardedRandomSampler(_Base):
    """Random permutation per epoch, cut to a multiple of ``num_replicas`` (no padding, no duplicates)."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, seed: int = 0):
        super().__init__(dataset, num_replicas, rank, seed)


class IdentityBalancedSampler(_Base):
    """P x K sampling: each batch holds ``p`` identities x ``k`` images (use ``DataLoader(batch_size=p*k,
    drop_last=True)``). The identities of an epoch are shuffled and split into disjoint groups of ``p``; the
    groups (global batches) are dealt round-robin to the ranks, so no image appears on two ranks. Identities
    with fewer than ``k`` images are sampled with replacement inside their slot (documented duplication within
    a batch).

    Args:
        labels: identity label per dataset index.
        p, k: identities per batch and images per identity.
    """

    def __init__(
        self,
        labels: Sequence[int],
        p: int,
        k: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ):
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        self.labels = torch.as_tensor(list(labels), dtype=torch.int64)
        self.p, self.k = p, k
        super().__init__(range(len(self.labels)), num_replicas, rank, seed)
        ids = torch.unique(self.labels)
        if len(ids) < p:
            raise ValueError(
                f"IdentityBalancedSampler: need at least p={p} identities, the dataset has {len(ids)}"
            )
        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels - self.labels.min())
        self._groups = [g for g in torch.split(order, counts[counts > 0].tolist())]
        self.batches_per_rank = (len(self._groups) // p) // self.num_replicas
        self.num_samples = self.batches_per_rank * p * k
        self.total_size = self.num_samples * self.num_replicas

    def _epoch_order(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        ids = torch.randperm(len(self._groups), generator=g)
        n_batches = self.batches_per_rank * self.num_replicas
        out: list[int] = []
        for b in range(self.rank, n_batches, self.num_replicas):
            for gi in ids[b * self.p : (b + 1) * self.p].tolist():
                group = self._groups[gi]
                if len(group) >= self.k:
                    pick = group[torch.randperm(len(group), generator=g)[: self.k]]
                else:
                    pick = group[torch.randint(len(group), (self.k,), generator=g)]
                out.extend(pick.tolist())
        return iter(out)

    def __len__(self) -> int:
        return self.num_samples


class MixtureSampler(_Base):
    """Draws ``num_samples`` indices of a ``ConcatDataset`` per epoch: each draw picks member i with
    probability ``probabilities[i]``, then the next index of member i's own shuffled order (a member is
    re-shuffled when used up). One global sequence is generated with the shared seed and dealt round-robin, so
    ranks never share a draw.

    Args:
        sizes: length of each member dataset; probabilities: one per member (normalised here).
        num_samples: draws per epoch over all ranks (default: sum of sizes).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        probabilities: Sequence[float],
        num_samples: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ):
        if len(sizes) != len(probabilities) or not sizes:
            raise ValueError(
                f"sizes ({len(sizes)}) and probabilities ({len(probabilities)}) must be non-empty and match"
            )
        probs = torch.as_tensor(list(probabilities), dtype=torch.float64)
        if (probs < 0).any() or probs.sum() <= 0:
            raise ValueError(f"probabilities must be >= 0 with a positive sum, got {list(probabilities)}")
        if any(s <= 0 for s, p in zip(sizes, probs.tolist(), strict=True) if p > 0):
            raise ValueError("a member with positive probability is empty")
        self.sizes, self.probs = list(sizes), probs / probs.sum()
        self.offsets = torch.cumsum(torch.tensor([0, *self.sizes[:-1]]), 0).tolist()
        super().__init__(range(sum(self.sizes)), num_replicas, rank, seed)
        total = num_samples if num_samples is not None else sum(self.sizes)
        self.num_samples = total // self.num_replicas
        self.total_size = self.num_samples * self.num_replicas

    def _epoch_order(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        members = torch.multinomial(self.probs, self.total_size, replacement=True, generator=g).tolist()
        orders = [torch.randperm(n, generator=g).tolist() if n else [] for n in self.sizes]
        cursor = [0] * len(self.sizes)
        out = []
        for m in members:
            if cursor[m] == self.sizes[m]:
                orders[m], cursor[m] = torch.randperm(self.sizes[m], generator=g).tolist(), 0
            out.append(self.offsets[m] + orders[m][cursor[m]])
            cursor[m] += 1
        return iter(out[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(ReportingDataLoader):
    """The training loader: a :class:`ReportingDataLoader` whose position in the epoch survives a restart.

    ``state_dict()`` = the sampler's state with the number of batches handed out in the current epoch;
    ``load_state_dict()`` makes the next pass of that epoch start after them. Lightning calls both (stateful
    dataloader support: it fetches batches on demand from a loader with a length, so "handed out" is
    "trained on"). Needs one of this module's samplers; with any other sampler the state is empty and a
    resumed epoch starts from its beginning. The loader's own generator (worker seeds) is reseeded from the
    sampler's seed and epoch at every pass, so loading never draws from the global RNG (which
    :class:`facezoo.callbacks.resume.ResumeState` restores).

    Example:
        >>> make = lambda: ShardedRandomSampler(range(10), num_replicas=1, rank=0)
        >>> loader = ResumableDataLoader(range(10), batch_size=2, sampler=make())
        >>> it = iter(loader); first = [next(it).tolist() for _ in range(2)]
        >>> state = loader.state_dict(); state["batches"]
        2
        >>> resumed = ResumableDataLoader(range(10), batch_size=2, sampler=make())
        >>> resumed.load_state_dict(state)
        >>> [b.tolist() for b in resumed] == [b.tolist() for b in list(loader)[2:]]
        True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_generator = self.generator is None and self._resumable() is not None
        if self._own_generator:
            self.generator = torch.Generator()  # reseeded per pass in __iter__
        self._batches = 0  # batches handed out in the current pass (counting the skipped ones of a resume)

    def _resumable(self) -> _Base | None:
        return self.sampler if isinstance(self.sampler, _Base) else None

    def __iter__(self) -> Iterator:
        sampler = self._resumable()
        self._batches = 0
        if sampler is not None:
            if self._own_generator:
                self.generator.manual_seed(sampler.seed * 1_000_003 + sampler.epoch)
            resume = sampler._resume
            if resume is not None and resume[0] == sampler.epoch and self.batch_size:
                self._batches = resume[1] // self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        sampler = self._resumable()
        if sampler is None or self.batch_size is None:
            return {}
        return {"sampler": sampler.state_dict(self._batches * self.batch_size), "batches": self._batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self._resumable()
        if sampler is not None and state:
            sampler.load_state_dict(state["sampler"])


def sir_probabilities(n_recognition: int, n_reconstruction: int) -> tuple[float, float]:
    """SIR's mixing rule: P(recognition) = N_recon / (N_recog + N_recon); P(reconstruction) = 1 - P."""
    p = n_reconstruction / (n_recognition + n_reconstruction)
    return p, 1.0 - p

"""Kill-and-resume: atomic checkpoint files and the random state a resumed fit needs to match an
uninterrupted one.

A fit killed at any step and restarted with ``--ckpt_path last`` (or the path of ``last.ckpt``) ends with the
same weights and metrics as a fit that was never interrupted when what the checkpoint holds is the whole
state:

- weights, optimizer, LR schedulers, global step, epoch and the loops' progress: Lightning saves them;
- the position in the training epoch: facezoo's training loaders
  (:class:`facezoo.data.samplers.ResumableDataLoader` with the samplers of that module) are stateful
  dataloaders that Lightning saves and restores;
- the global random generators (Python, NumPy, torch CPU and CUDA): Lightning does not save them
  (``seed_everything`` only seeds the start), :class:`ResumeState` does, and restores them when the resumed
  fit starts training.

Randomness drawn inside DataLoader worker processes (augmentation with ``num_workers > 0``) continues from a
fresh, seeded stream after a resume: statistically the same, not bit for bit (that would need per-sample
seeds).

Writes are atomic with :class:`AtomicCheckpointIO`: each checkpoint goes to a temporary file in the target
folder, is flushed to disk, then renamed over the target (``os.replace``), so a kill during a save leaves the
previous ``last.ckpt`` intact. Lightning's own ``_atomic_save`` writes through an fsspec transaction whose
temporary file lives in the system temp folder and is *moved* into place: on clusters, where that folder and
the checkpoint folder are different file systems, the move is a copy (a kill mid-copy truncates the
target), and nothing is flushed to disk.

:class:`ResumableCheckpoint` puts the three together: a ``ModelCheckpoint`` with ``save_last=True`` that saves
atomically and carries the random state, and whose ``last`` is found across the logger's versions (a restarted
``facezoo fit`` logs into a new ``version_N``, where Lightning alone would find no ``last.ckpt``)::

    facezoo fit --config zoo/deep3d.yaml --config zoo/data/synthetic.yaml --config zoo/resume.yaml
    # killed? the same command with --ckpt_path last continues where the newest last.ckpt left off

or in Python ``Trainer(callbacks=[ResumableCheckpoint(every_n_train_steps=500)])``; with a ModelCheckpoint of
your own, add ``ResumeState()`` to the callbacks and ``AtomicCheckpointIO()`` to the plugins.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "last.ckpt"
    >>> AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(3)}, path)
    >>> torch.load(path, weights_only=True)["step"].item(), sorted(p.name for p in path.parent.iterdir())
    (3, ['last.ckpt'])
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["AtomicCheckpointIO", "ResumableCheckpoint", "ResumeState", "get_rng_states", "set_rng_states"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temp file in the same folder + fsync +
    ``os.replace``);
    remote URLs (``s3://`` ...) go through Lightning's own writer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(
                "AtomicCheckpointIO.save_checkpoint: storage_options is not supported "
                f"(got {storage_options!r}); write a custom CheckpointIO to pass them"
            )
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX and Windows within one file system
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return None


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def get_rng_states() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA when initialised) generator states, as tensors and plain numbers
    (loadable with ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_states(state: dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_states`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeState(Callback):
    """Saves the global random generators' states in every checkpoint and restores them when a resumed fit
    starts training (``on_train_start``, after the data loaders are set up), so that the steps after the
    resume draw the same random numbers (dropout, random crops in the main process) as the uninterrupted
    fit."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": get_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_start(self, trainer, pl_module) -> None:
        if self._pending is not None:
            set_rng_states(self._pending)
            self._pending = None


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for kill-and-resume: ``save_last=True`` by default, atomic writes
    (installs :class:`AtomicCheckpointIO` when the strategy uses Lightning's plain ``TorchCheckpointIO``), the
    random state saved and restored like :class:`ResumeState`, and ``ckpt_path="last"`` resolved to the newest
    ``last*.ckpt`` of this run's folder or of any version of the same logger
    (``<save_dir>/<name>/*/checkpoints``).

    Args: those of ``ModelCheckpoint`` (``save_last`` defaults to ``True``; give ``every_n_train_steps`` for
    checkpoints within long epochs).
    """

    def __init__(self, *args: Any, save_last: bool | str | None = True, **kwargs: Any) -> None:
        super().__init__(*args, save_last=save_last, **kwargs)
        self._pending_rng: dict[str, Any] | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng": get_rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        self._pending_rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng)
            self._pending_rng = None

    def _find_last_checkpoints(self, trainer) -> set[str]:
        found = set(super()._find_last_checkpoints(trainer))
        if self.dirpath is None and trainer.loggers:  # also the logger's other versions (earlier runs)
            logger = trainer.loggers[0]
            save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
            runs = Path(save_dir) / str(logger.name or "")
            last = re.compile(
                rf"^{re.escape(self.CHECKPOINT_NAME_LAST)}(-\d+)?{re.escape(self.FILE_EXTENSION)}$"
            )
            if runs.is_dir():
                found |= {os.path.normpath(p) for p in runs.glob("*/checkpoints/*") if last.match(p.name)}
        return found

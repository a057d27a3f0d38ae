"""A plain-text progress printer for non-interactive runs (``make demo > log``, CI, SLURM).

Lightning's tqdm bar redraws on every step; without a terminal each redraw becomes a new line and a demo's
log grows to megabytes. :class:`LogProgress` prints one line at most every ``interval`` seconds (and one at
the end of each stage) with the step, the rate and the progress-bar metrics. ``facezoo fit|validate|test|
predict`` and ``facezoo demo`` use it instead of the tqdm bar when stdout is not a terminal.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar


class LogProgress(ProgressBar):
    """One progress line at most every ``interval`` seconds, written to ``stream`` (default stdout).

    Example:
        >>> LogProgress(interval=60.0).interval
        60.0
    """

    def __init__(self, interval: float = 30.0, stream=None) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval: expected seconds > 0, got {interval!r}")
        self.interval = float(interval)
        self.stream = stream
        self._enabled = True
        self._start = self._last = 0.0

    # -- ProgressBar interface
    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        if self._trainer is None:
            return self._enabled
        return self._enabled and self._trainer.is_global_zero

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _metrics(self, trainer, pl_module) -> str:
        items = []
        for k, v in self.get_metrics(trainer, pl_module).items():
            if k == "v_num":
                continue
            items.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
        return " ".join(items)

    def _start_stage(self) -> None:
        self._start = self._last = time.monotonic()

    def _maybe(self, what: str, done: int, total: Any, trainer, pl_module, force: bool = False) -> None:
        now = time.monotonic()
        if not self.is_enabled or (not force and now - self._last < self.interval):
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        of = f"/{int(total)}" if isinstance(total, int | float) and math.isfinite(total) else ""
        line = f"{what} {done}{of} ({done / elapsed:.2f} it/s, {elapsed:.0f} s)"
        metrics = self._metrics(trainer, pl_module)
        self._print(f"{line} {metrics}".rstrip())

    # -- fit
    def on_train_start(self, trainer, pl_module) -> None:
        self._start_stage()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        what = f"fit: epoch {trainer.current_epoch} step"
        self._maybe(what, trainer.global_step, total, trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._maybe("fit done: step", trainer.global_step, None, trainer, pl_module, force=True)

    # -- evaluation (validate inside fit, validate, test, predict)
    def on_validation_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn != "fit":
            self._start_stage()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.state.fn != "fit":
            total = _total(trainer.num_val_batches, dataloader_idx)
            self._maybe("validate: batch", batch_idx + 1, total, trainer, pl_module)

    def on_test_start(self, trainer, pl_module) -> None:
        self._start_stage()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        total = _total(trainer.num_test_batches, dataloader_idx)
        self._maybe("test: batch", batch_idx + 1, total, trainer, pl_module)

    def on_predict_start(self, trainer, pl_module) -> None:
        self._start_stage()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        total = _total(trainer.num_predict_batches, dataloader_idx)
        self._maybe("predict: batch", batch_idx + 1, total, trainer, pl_module)


def _total(batches: Any, index: int) -> Any:
    """The batch count of dataloader ``index`` (Lightning keeps one per evaluation dataloader)."""
    if isinstance(batches, list | tuple):
        return batches[index] if 0 <= index < len(batches) else None
    return batches


def interactive() -> bool:
    """Whether stdout is a terminal (then Lightning's tqdm bar is fine)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False

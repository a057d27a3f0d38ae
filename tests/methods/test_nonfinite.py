"""A non-finite loss skips its step (no parameter or optimizer state moves), is counted, and too many in a row
stop the run naming the terms."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader

from facezoo.methods.base import FaceMethod, linear_neutral_shape


class Scripted(FaceMethod):
    """A one-weight method whose ``bad`` term is NaN on the steps listed in ``nan_steps``."""

    def __init__(self, nan_steps=(), max_nonfinite_steps: int = 10) -> None:
        super().__init__("procedural:600", image_size=16, max_nonfinite_steps=max_nonfinite_steps)
        self.weight = nn.Parameter(torch.ones(3))
        self.nan_steps = set(nan_steps)
        self.history: list[torch.Tensor] = []

    def training_losses(self, batch):
        self.history.append(self.weight.detach().clone())
        good = ((self.weight - batch["image"].mean()) ** 2).sum()
        bad = self.weight.sum() * (float("nan") if len(self.history) - 1 in self.nan_steps else 0.0)
        return {"good": good, "bad": bad, "total": good + bad}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)

    def reconstruct(self, batch, render=False):
        raise NotImplementedError

    def neutral_shape(self, rec):
        return linear_neutral_shape(self.morphable, rec)


def _fit(method: Scripted, steps: int) -> Trainer:
    data = DataLoader([{"image": torch.rand(3, 16, 16)} for _ in range(steps)], batch_size=1)
    trainer = Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(method, data)
    return trainer


def test_a_nonfinite_step_is_skipped_and_counted():
    method = Scripted(nan_steps=(1, 2))
    trainer = _fit(method, 5)
    w = method.history + [method.weight.detach()]
    assert not torch.equal(w[1], w[0])  # step 0 trained
    assert torch.equal(w[2], w[1]) and torch.equal(w[3], w[1])  # steps 1 and 2 were skipped
    assert not torch.equal(w[4], w[3]) and torch.isfinite(w[5]).all()
    # Adam's state saw exactly the three finite steps (a skipped step moves no moment either)
    assert int(trainer.optimizers[0].state[method.weight]["step"]) == 3
    assert float(trainer.callback_metrics["train/skipped_nonfinite"]) == 2.0


def test_too_many_nonfinite_steps_in_a_row_stop_the_run_naming_the_terms():
    method = Scripted(nan_steps=(1, 2, 3), max_nonfinite_steps=3)
    with pytest.raises(FloatingPointError, match=r"3 training steps in a row .*terms \['bad', 'total'\]"):
        _fit(method, 6)
    ok = Scripted(nan_steps=(1, 2, 4, 5), max_nonfinite_steps=3)  # never 3 in a row
    _fit(ok, 7)
    with pytest.raises(ValueError, match="max_nonfinite_steps"):
        Scripted(max_nonfinite_steps=0)

"""The mean ± population std over samples that several metrics report, exact under DDP."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanStdMetric(Metric):
    """Mean and population std of a per-sample value: sum, sum of squares and count states (float64, reduced
    with ``sum``, so exact under DDP). Subclasses set ``name`` and feed values with :meth:`accumulate`;
    ``compute()`` → ``{name: mean, name + "_std": std}``."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False
    name: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        f64 = torch.float64
        self.add_state("total", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("total_sq", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=f64), dist_reduce_fx="sum")

    def accumulate(self, values: torch.Tensor) -> None:
        """Add per-sample ``values`` (any shape; every element is one sample)."""
        v = values.detach().to(self.total.device, torch.float64)
        self.total += v.sum()
        self.total_sq += (v**2).sum()
        self.count += v.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        mean = self.total / self.count
        std = (self.total_sq / self.count - mean**2).clamp_min(0).sqrt()
        return {self.name: mean, f"{self.name}_std": std}

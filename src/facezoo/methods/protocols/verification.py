"""Face verification protocol runner (SIR, Tables II-IV): LFW-style 10-fold accuracy of 3D shape embeddings.

For each pair (``image [B,2,3,H,W]``, ``same [B]``, ``pair_index [B]``) both images are reconstructed **one
by one** (the pair is not an image set: a set-aggregating method such as Deep3DFace's C-Net would otherwise
pool the two identities) and two embeddings are compared:

* ``params``: the identity coefficients ``rec.params["id"]`` (SIR's "shape parameters"; in units of std);
* ``vertices``: the neutral identity shape ``morphable(id, exp=0)`` minus the model's mean face, flattened
  (SIR's "reconstructed vertices"; the paper is silent on centring: we subtract the mean shape so that the
  cosine distance compares identity deformations rather than two almost identical head shapes; the Euclidean
  distance is unchanged by it).

:class:`facezoo.metrics.VerificationAccuracy` gives the 10-fold accuracy (threshold chosen on nine folds,
tested on the tenth, contiguous folds in protocol order) with the Euclidean and cosine distances; pair
indices make it exact under DDP (padding repeats are dropped). ``n_folds`` is the datamodule's (LFW: 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from facezoo.methods.protocols.base import ProtocolResult, ProtocolRunner, neutral_shape
from facezoo.methods.views import flatten_views
from facezoo.metrics.report import format_table
from facezoo.metrics.verification import VerificationAccuracy

EMBEDDINGS = ("params", "vertices")


class VerificationProtocol(ProtocolRunner):
    """10-fold verification accuracy on identity parameters and on neutral vertices (module docstring)."""

    name: ClassVar[str] = "verification"
    batch_keys: ClassVar[tuple[str, ...]] = ("same", "pair_index")

    def __init__(self, method, datamodule=None) -> None:
        super().__init__(method, datamodule)
        n_folds = int(getattr(datamodule, "n_folds", 10))
        self.metrics = {e: VerificationAccuracy(n_folds=n_folds).to(method.device) for e in EMBEDDINGS}

    def update(self, method, batch: Mapping[str, Any]) -> None:
        self.check_batch(method, batch)
        image = batch["image"]
        if image.ndim != 5 or image.shape[1] != 2:
            raise ValueError(f"image: expected pairs [B,2,3,H,W], got {tuple(image.shape)}")
        b = image.shape[0]
        flat = flatten_views(batch)  # [B*2] single images, reconstructed one by one
        method.check_batch(flat, "predict")
        rec = method.reconstruct(flat)
        if "id" not in rec.params:
            raise ValueError(f"{type(method).__name__}: verification needs rec.params['id']")
        shape = neutral_shape(method, rec)
        mean = method.morphable.mean
        vertices = shape - mean if shape.shape[1:] == mean.shape else shape
        emb = {"params": rec.params["id"].detach().flatten(1), "vertices": vertices.flatten(1)}
        same = torch.as_tensor(batch["same"], device=image.device).reshape(b).bool()
        idx = torch.as_tensor(batch["pair_index"], device=image.device).reshape(b).long()
        for name, e in emb.items():
            e = e.reshape(b, 2, -1)
            self.metrics[name].update(e[:, 0], e[:, 1], same, idx)

    def compute(self, method) -> ProtocolResult:
        metrics: dict[str, float] = {}
        rows: dict[str, dict[str, str]] = {}
        for name, metric in self.metrics.items():
            out = {k: float(v) for k, v in metric.compute().items()}  # collective (cat states)
            metrics.update({f"{name}_{k}": v for k, v in out.items()})
            rows[name] = {
                f"{d} acc (%)": f"{100 * out[f'acc_{d}']:.2f} ± {100 * out[f'acc_{d}_std']:.2f}"
                for d in ("euclidean", "cosine")
            }
            metric.reset()
        title = (
            f"test results: {self.metrics['params'].n_folds}-fold verification accuracy, mean ± std over "
            f"folds ({type(method).__name__})"
        )
        table = format_table(rows, row_header="embedding")
        return ProtocolResult(metrics, table, title)

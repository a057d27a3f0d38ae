"""The default protocol: vertex error and 68-point landmark NME (AFLW2000-3D's yaw buckets).

The metrics live on the method (``val_vertex_error``: :class:`torchmetrics.MeanMetric`, ``val_nme``:
:class:`facezoo.metrics.LandmarkNME`) and are updated by :meth:`FaceMethod.evaluate`; this runner feeds
them, reads and resets them at epoch end, and formats the table (the logged values: NME as a fraction, per yaw
bucket and the mean of the bucket means; vertex error in mm). Batches with a view axis are measured per image
(:mod:`facezoo.methods.views`). It needs only what the method's ``reconstruct`` needs (``predict`` keys);
each metric runs when its labels are there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from facezoo.methods.protocols.base import ProtocolResult, ProtocolRunner
from facezoo.metrics.report import format_table


class ReconstructionProtocol(ProtocolRunner):
    """Vertex error (when ``params["vertices"]`` is given) and landmark NME (when ``landmarks68`` is)."""

    name: ClassVar[str] = "reconstruction"

    def update(self, method, batch: Mapping[str, Any]) -> None:
        self.check_batch(method, batch)
        method.check_batch(batch, "predict")
        params = batch.get("params")
        if "landmarks68" not in batch and not (isinstance(params, Mapping) and "vertices" in params):
            source = type(self.datamodule).__name__ if self.datamodule is not None else "the dataloader"
            raise ValueError(
                "the 'reconstruction' protocol measures the landmark NME ('landmarks68') and the vertex "
                f"error (params['vertices']); {source} gives neither (batch keys: {sorted(batch)})"
            )
        method.evaluate(method.reconstruct(batch), batch)

    def compute(self, method) -> ProtocolResult:
        results: dict[str, float] = {}
        if method.val_vertex_error.update_count:
            results["vertex_error_mm"] = float(method.val_vertex_error.compute())
        if int(method.val_nme.count) > 0:
            nme = method.val_nme.compute()
            keys = [k for k in nme if k.startswith("nme_") and k[4].isdigit()] + ["nme_balanced"]
            keys = keys if int(method.val_nme.bucket_count.sum()) > 0 else []
            results.update({k: float(nme[k]) for k in ["nme", "nme_std", *keys] if not nme[k].isnan()})
            # samples LandmarkNME could not score (degenerate ground truth) or bucket (non-finite yaw)
            results.update({f"nme_{k}": float(nme[k]) for k in ("skipped", "no_yaw") if nme[k] > 0})
        method.val_vertex_error.reset()
        method.val_nme.reset()
        table = format_table({type(method).__name__: results}, precision=4) if results else ""
        # one unit: the table shows the logged values (NME as a fraction of the normaliser, not %)
        return ProtocolResult(results, table, "test results (NME: fraction of √(w·h) of the landmark box, "
                              "as logged, x100 = %; vertex error: mm)")  # fmt: skip

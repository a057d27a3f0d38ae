"""The default protocol: vertex error and 68-point landmark NME (AFLW2000-3D's yaw buckets).

The metrics live on the method (``val_vertex_error``: :class:`torchmetrics.MeanMetric`, ``val_nme``:
:class:`facezoo.metrics.LandmarkNME`) and are updated by :meth:`FaceMethod.evaluate`; this runner feeds
them, reads and resets them at epoch end, and formats the table (the logged values: NME as a fraction, per yaw
bucket and the mean of the bucket means; vertex error in mm).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from facezoo.methods.protocols.base import ProtocolResult, ProtocolRunner
from facezoo.metrics.report import format_table


class ReconstructionProtocol(ProtocolRunner):
    """Vertex error (when ``params["vertices"]`` is given) and landmark NME (when ``landmarks68`` is)."""

    name: ClassVar[str] = "reconstruction"

    @classmethod
    def required_keys(cls, method, stage: str) -> tuple[str, ...]:
        return tuple(method._keys_for(stage))  # historical behaviour: the method's own per-stage keys

    def update(self, method, batch: Mapping[str, Any]) -> None:
        method.check_batch(batch, "fit")
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

"""Result tables and JSON files for the protocol runners (``facezoo test``).

``results`` is either one row ``{column: value}`` or several ``{row name: {column: value}}`` (e.g. one row per
method or per dataset split). Values may be floats, ints, 0-d tensors or numpy scalars; NaN prints as ``-``.

Example:
    >>> print(format_table({"ours": {"nme_0_30": 0.0263, "nme_30_60": 0.0331, "nme_60_90": 0.0449}},
    ...                    scale=100, precision=2))
    | method | nme_0_30 | nme_30_60 | nme_60_90 |
    |--------|----------|-----------|-----------|
    | ours   | 2.63     | 3.31      | 4.49      |
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["add_skipped", "format_table", "skipped_line", "to_builtin", "write_json"]


def to_builtin(value: Any) -> Any:
    """Tensors, numpy arrays/scalars and mappings → plain Python (floats, ints, lists, dicts)."""
    if isinstance(value, Mapping):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_builtin(v) for v in value]
    if hasattr(value, "tolist"):  # torch.Tensor, numpy array or scalar
        plain = value.tolist()
        return to_builtin(plain) if isinstance(plain, list) else plain
    return value


def _rows(results: Mapping) -> dict[str, dict[str, Any]]:
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results: expected a non-empty dict, got {type(results).__name__} {results!r:.80}")
    if all(isinstance(v, Mapping) for v in results.values()):
        return {str(k): dict(v) for k, v in results.items()}
    if any(isinstance(v, Mapping) for v in results.values()):
        raise ValueError(
            "results: mix of rows (dicts) and values; give {row: {column: value}} or {column: value}"
        )
    return {"": dict(results)}


def _fmt(v: Any, scale: float, precision: int) -> str:
    v = to_builtin(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v * scale:.{precision}f}"


def format_table(
    results: Mapping,
    columns: list[str] | None = None,
    scale: float = 1.0,
    precision: int = 4,
    row_header: str = "method",
) -> str:
    """A Markdown table of metric results (per bucket, the mean, ... one column per key).

    Args:
        results: ``{column: value}`` (one row) or ``{row: {column: value}}``.
        columns: column order (default: keys in first-seen order); a missing value prints as ``-``.
        scale: multiply float values (e.g. 100 for NME in %); ints are printed as they are (counts).
        precision: decimals of floats.
        row_header: title of the first column (rows' names).

    Returns:
        The table, lines joined with ``\\n``, no trailing newline.
    """
    rows = _rows(results)
    if columns is None:
        columns = []
        for r in rows.values():
            columns += [str(c) for c in r if str(c) not in columns]
    header = [row_header, *columns]
    body = [
        [name, *(_fmt(r[c], scale, precision) if c in r else "-" for c in columns)]
        for name, r in rows.items()
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(b) for b in body)])


def write_json(results: Mapping, path: str | Path) -> Path:
    """Write results (tensors converted to floats) as indented JSON with sorted keys; creates the folder.

    NaN is written as ``NaN`` (Python's json default, read back by :func:`json.load`). Returns the path.
    """
    if not isinstance(results, Mapping):
        raise ValueError(f"results: expected a dict, got {type(results).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_builtin(results), indent=2, sort_keys=True) + "\n")
    return path


def _gather(reasons: list[str]) -> list[str]:
    """Every rank's list, concatenated in rank order (the list itself without ``torch.distributed``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(reasons)
    lists: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(lists, list(reasons))
    return [r for part in lists for r in part]


def skipped_line(reasons: list[str], shown: int = 10) -> str:
    """The line under a result table that reports skipped bad samples ("" when none).

    Example:
        >>> skipped_line(["a.jpg: truncated"])
        'skipped 1 bad sample (in no metric): a.jpg: truncated'
    """
    if not reasons:
        return ""
    more = f"; ... and {len(reasons) - shown} more" if len(reasons) > shown else ""
    noun = "sample" if len(reasons) == 1 else "samples"
    return f"skipped {len(reasons)} bad {noun} (in no metric): " + "; ".join(reasons[:shown]) + more


def add_skipped(result: Any, reasons: list[str]) -> Any:
    """Record on a protocol result (``metrics``, ``table``, ``details``) the bad samples skipped during the
    epoch (gathered over ranks, a collective call): ``details["skipped"]`` (count) and
    ``details["skipped_samples"]`` (``"path: problem"``) go to ``test_results.json``, a ``skipped`` metric
    and a line under the table when there were any. Returns ``result``."""
    reasons = _gather(reasons)
    result.details["skipped"] = len(reasons)
    result.details["skipped_samples"] = reasons
    if reasons:
        result.metrics["skipped"] = float(len(reasons))
        result.table = f"{result.table}\n{skipped_line(reasons)}" if result.table else skipped_line(reasons)
    return result

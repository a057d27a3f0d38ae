"""Model cards: a JSON file beside a checkpoint saying what it is (config, data, metrics, sha256, versions).

``<checkpoint>.card.json`` (``last.ckpt`` -> ``last.card.json``) is written by the
:class:`~facezoo.callbacks.model_card.ModelCard` callback at the end of fit and test, and by
``facezoo zoo build`` / ``publish``. Its ``sha256`` lets ``facezoo zoo verify`` check a checkpoint that has no
index hash (a locally built one).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["card_path", "make_card", "read_card", "versions", "write_card"]


def card_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``runs/x/last.ckpt`` -> ``runs/x/last.card.json``.

    Example:
        >>> card_path("runs/x/last.ckpt").as_posix()
        'runs/x/last.card.json'
    """
    path = Path(checkpoint)
    return path.with_name(path.stem + ".card.json")


def versions() -> dict[str, str]:
    """The versions that produced a checkpoint (facezoo, torch, lightning, python)."""
    import lightning
    import torch

    import facezoo

    return {
        "facezoo": facezoo.__version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy (tensors to numbers, paths and other objects to strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def make_card(
    checkpoint: str | os.PathLike[str],
    *,
    method: str | None = None,
    hyper_parameters: dict | None = None,
    data: dict | None = None,
    config: dict | str | None = None,
    metrics: dict | None = None,
    global_step: int | None = None,
    extra: dict | None = None,
) -> dict[str, Any]:
    """The card of ``checkpoint`` (its sha256 is computed from the file)."""
    from facezoo.hub.download import file_sha256

    path = Path(checkpoint)
    card = {
        "checkpoint": path.name,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "method": method,
        "hyper_parameters": _plain(hyper_parameters or {}),
        "data": _plain(data or {}),
        "config": _plain(config),
        "metrics": _plain(metrics or {}),
        "global_step": global_step,
        "versions": versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    card.update(_plain(extra or {}))
    return card


def write_card(checkpoint: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write ``card`` beside ``checkpoint`` (atomically: temp file + rename)."""
    path = card_path(checkpoint)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_card(checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The card beside ``checkpoint``, or None."""
    path = card_path(checkpoint)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"model card {path}: not valid JSON ({err})") from err

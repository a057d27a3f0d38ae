"""Helpers of the bad-input tests: the datamodule tests' dataset writers, a pickle payload, a tiny method."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_datamodule_fixtures", Path(__file__).resolve().parents[1] / "datamodules" / "conftest.py"
)
writers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(writers)

#: the tiny Deep3DFace every CLI test here evaluates (seconds on a CPU)
TINY_METHOD = [
    "--seed_everything=0",
    "--model=facezoo.methods.Deep3DFace",
    "--model.morphable_model=procedural:600",
    "--model.backbone=resnet18",
    "--model.backbone_kwargs={width: 8}",
    "--model.image_size=48",
]


class Payload:
    """Unpickling this calls ``os.system("touch <marker>")``: a file appears if the loader runs code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def truncate(path: Path, keep: int = 300) -> None:
    """Cut a file to its first ``keep`` bytes (a truncated download)."""
    path.write_bytes(path.read_bytes()[:keep])

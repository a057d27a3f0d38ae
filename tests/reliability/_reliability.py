"""Helpers of the bad-input tests: the datamodule tests' dataset writers, a pickle payload, a tiny method and
the ``facezoo test`` / ``facezoo prepare`` command lines the tests run on an AFLW2000 folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from facezoo.cli import main

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


def aflw_test_args(root, out, *extra: str) -> list[str]:
    """``facezoo test`` arguments: TINY_METHOD on the AFLW2000 folder ``root`` (48 px), results in ``out``."""
    return [
        "test",
        *TINY_METHOD,
        "--data=facezoo.datamodules.AFLW2000",
        f"--data.root={root}",
        "--data.image_size=48",
        "--data.num_workers=0",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={out}",
        *extra,
    ]


def prepare_aflw(root, out, *extra: str) -> int:
    """Run ``facezoo prepare aflw2000`` on ``root`` into ``out`` at 32 px; returns the exit status."""
    return main(["prepare", "aflw2000", "--root", str(root), "--out", str(out), "--image-size", "32", *extra])


class Payload:
    """Unpickling this calls ``os.system("touch <marker>")``: a file appears if the loader runs code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def truncate(path: Path, keep: int = 300) -> None:
    """Cut a file to its first ``keep`` bytes (a truncated download)."""
    path.write_bytes(path.read_bytes()[:keep])

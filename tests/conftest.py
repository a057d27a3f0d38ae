"""Shared pytest configuration: markers, seeds and the optional real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """``$FACEZOO_SHARED_DATA`` or ``../shared/data`` beside the checkout, if present."""
    root = Path(os.environ.get("FACEZOO_SHARED_DATA", REPO.parent / "shared" / "data"))
    return root if root.is_dir() else None


@pytest.fixture
def shared_data():
    """Path to the real sample files; the test is skipped cleanly where they are absent (a fresh clone)."""
    root = shared_data_root()
    if root is None:
        pytest.skip("../shared/data is not present (set FACEZOO_SHARED_DATA to use the real samples)")
    return root


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)

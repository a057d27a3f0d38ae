"""Fixtures of the bad-input tests (helpers in ``_reliability.py``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from _reliability import Payload, prepare_aflw, writers


@pytest.fixture
def payload(tmp_path):
    """``(pickle bytes, marker path)``: loading the bytes with pickle would create the marker file."""
    marker = tmp_path / "PAYLOAD_RAN"
    return pickle.dumps(Payload(marker), protocol=2), marker


@pytest.fixture
def aflw_root(tmp_path) -> Path:
    """Three AFLW2000-3D samples, one per yaw bucket (the datamodule tests' fixture)."""
    import numpy as np

    rng = np.random.default_rng(1)
    root = tmp_path / "AFLW2000"
    for i, y in enumerate([10, 45, 80]):
        writers.write_image(root / f"image{i:05d}.jpg", rng)
        writers.write_3ddfa_mat(root / f"image{i:05d}.mat", rng, y, n2d=21, pt3d=True)
    return root


@pytest.fixture
def w300lp_root(tmp_path) -> Path:
    """Two AFW source faces and one IBUG face with _Flip mirrors (the datamodule tests' fixture)."""
    import numpy as np

    rng = np.random.default_rng(0)
    root = tmp_path / "300W_LP"
    for source, ys in {"AFW_111_1": [5, 20, 40], "IBUG_img_2": [-3, -25]}.items():
        subset = source.split("_")[0]
        for k, y in enumerate(ys):
            for folder, sign in ((subset, 1), (f"{subset}_Flip", -1)):
                writers.write_image(root / folder / f"{source}_{k}.jpg", rng)
                writers.write_3ddfa_mat(root / folder / f"{source}_{k}.mat", rng, sign * y)
    return root


@pytest.fixture
def aflw_shards(aflw_root, tmp_path) -> Path:
    """The ``test`` shard folder that ``facezoo prepare aflw2000`` writes from ``aflw_root`` (32 px)."""
    out = tmp_path / "shards"
    assert prepare_aflw(aflw_root, out) == 0
    return out / "test"

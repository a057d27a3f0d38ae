"""Canonical HDF5 model file: bit-exact round trip, devices, clear errors for foreign files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from facezoo.morphable import MorphableModel
from facezoo.morphable.hdf5 import FORMAT_VERSION, load_model, read_info, save_model


def make_model(V: int = 50, texture: bool = True) -> MorphableModel:
    g = torch.Generator().manual_seed(3)
    kw = dict(
        mean=torch.randn(V, 3, generator=g) * 50,
        id_basis=torch.randn(V, 3, 7, generator=g),
        exp_basis=torch.randn(V, 3, 5, generator=g),
        triangles=torch.randint(0, V, (80, 3), generator=g),
        landmarks68=torch.randint(0, V, (68,), generator=g),
        id_std=torch.rand(7, generator=g) + 0.1,
        exp_std=torch.rand(5, generator=g) + 0.1,
        masks={"skin": torch.rand(V, generator=g) > 0.5, "front": torch.ones(V, dtype=torch.bool)},
        landmark_valid=torch.arange(68) > 3,
        name="rt",
        source="unit test",
        licence="CC0\nsecond line",
    )
    if texture:
        kw.update(
            tex_mean=torch.rand(V, 3, generator=g),
            tex_basis=torch.randn(V, 3, 4, generator=g),
            tex_std=torch.rand(4, generator=g) + 0.1,
            uv=torch.rand(V, 2, generator=g),
        )
    return MorphableModel(**kw)


@pytest.mark.parametrize("texture", [True, False])
def test_round_trip_bit_exact(tmp_path, texture):
    model = make_model(texture=texture)
    path = save_model(model, tmp_path / "m.h5")
    back = load_model(path)
    sd0, sd1 = model.state_dict(), back.state_dict()
    assert sd0.keys() == sd1.keys()
    for k, v in sd0.items():
        if isinstance(v, torch.Tensor):
            assert v.dtype == sd1[k].dtype and torch.equal(v, sd1[k]), k
    assert back.mask_names == ["skin", "front"]
    assert (back.name, back.source, back.licence, back.bases_scaled) == (
        "rt",
        "unit test",
        "CC0\nsecond line",
        False,
    )
    info = read_info(path)
    assert {k: info[k] for k in model.info()} == model.info()
    assert info["landmarks_valid"] == 64


def test_load_to_device_and_dtype(tmp_path):
    path = save_model(make_model(), tmp_path / "m.h5")
    meta = load_model(path, device="meta")
    assert meta.mean.device.type == "meta"
    m64 = load_model(path).to(torch.float64)
    assert m64.mean.dtype == torch.float64


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such morphable-model file"):
        load_model(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        load_model(tmp_path / "text.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a facezoo morphable model"):
        load_model(tmp_path / "other.h5")
    path = save_model(make_model(), tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}"):
        load_model(path)
    with pytest.raises(TypeError, match="MorphableModel"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x.h5")

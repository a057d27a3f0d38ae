"""Morphable-model files with inconsistent arrays: `facezoo model info`, `preview` and `load_model` refuse
them with the same check (MorphableModel's), an error naming the file and exit status 2."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from facezoo.cli import main
from facezoo.morphable.hdf5 import load_model, read_info, save_model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    from facezoo.morphable.procedural import procedural_model

    path = tmp_path_factory.mktemp("model") / "ok.h5"
    return save_model(procedural_model(n_vertices=600, n_id=4, n_exp=2, n_tex=2), path)


def _replace(f, key, value):
    del f[key]
    f.create_dataset(key, data=value)


EDITS = {
    "basis-V": (lambda f: _replace(f, "mean", f["mean"][()][:-1]), r"id_basis: expected shape \[V=599"),
    "std-K": (lambda f: _replace(f, "id_std", f["id_std"][()][:-1]), r"id_std: expected shape \[4\]"),
    "nan-mean": (lambda f: f["mean"].__setitem__((0, 0), np.nan), "mean: contains NaN"),
    "triangle-index": (lambda f: f["triangles"].__setitem__((0, 0), 10**6), "triangles: vertex indices"),
    "landmark-index": (lambda f: f["landmarks68"].__setitem__(0, -5), "landmarks68"),
}


@pytest.fixture(params=sorted(EDITS))
def bad(request, good, tmp_path):
    edit, message = EDITS[request.param]
    path = tmp_path / f"{request.param}.h5"
    shutil.copy(good, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path, message


def test_model_info_refuses_inconsistent_files(bad, capsys):
    path, message = bad
    assert main(["model", "info", str(path)]) == 2
    err = capsys.readouterr()
    assert err.out == ""  # no summary printed
    assert f"{path}: not a valid morphable model" in err.err
    assert __import__("re").search(message, err.err)


def test_load_info_and_preview_share_the_check(bad, tmp_path, capsys):
    path, message = bad
    for call in (load_model, read_info):
        with pytest.raises(ValueError, match=message):
            call(path)
    assert main(["model", "preview", str(path), "-o", str(tmp_path / "p.png"), "--points"]) == 2
    assert "not a valid morphable model" in capsys.readouterr().err


def test_good_file_info_still_prints(good, capsys):
    assert main(["model", "info", str(good)]) == 0
    assert "vertices" in capsys.readouterr().out

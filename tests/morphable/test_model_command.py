"""`facezoo model convert|info|preview` end to end on small fixtures and on the real SFM/ICT files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.commands import discover
from facezoo.morphable import MorphableModel
from facezoo.morphable.hdf5 import load_model, save_model


def run(argv: list[str]) -> int:
    return discover()["model"].run(argv, "facezoo model")


def small_model() -> MorphableModel:
    g = torch.Generator().manual_seed(0)
    n = 12
    ys, xs = torch.meshgrid(torch.linspace(-60, 60, n), torch.linspace(-50, 50, n), indexing="ij")
    mean = torch.stack([xs, ys, 100 - 0.01 * (xs**2 + ys**2)], -1).reshape(-1, 3)
    tri = [[r * n + c, r * n + c + 1, (r + 1) * n + c + 1] for r in range(n - 1) for c in range(n - 1)]
    tri += [[r * n + c, (r + 1) * n + c + 1, (r + 1) * n + c] for r in range(n - 1) for c in range(n - 1)]
    V = n * n
    return MorphableModel(
        mean=mean,
        id_basis=torch.randn(V, 3, 3, generator=g),
        exp_basis=torch.randn(V, 3, 2, generator=g),
        id_std=torch.tensor([3.0, 2.0, 1.0]),
        triangles=torch.tensor(tri),
        landmarks68=torch.randint(0, V, (68,), generator=g),
        tex_mean=torch.full((V, 3), 0.6),
        name="grid",
    )


def test_info_and_preview(tmp_path, capsys):
    path = save_model(small_model(), tmp_path / "m.h5")
    assert run(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "vertices               144" in out and "identity components    3" in out and "grid" in out
    assert run(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_exp"] == 2
    for extra in ([], ["--points"]):
        png = tmp_path / f"p{len(extra)}.png"
        assert run(["preview", str(path), "-o", str(png), "--size", "64", *extra]) == 0
        img = Image.open(png)
        assert img.size == (5 * 64, 2 * 64 + 18)
        px = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).reshape(-1, 3))
        assert (px < 250).any() and (px[:, 0] > px[:, 1] + 100).any()  # something drawn, red landmarks


def test_convert_procedural_and_errors(tmp_path, capsys):
    pytest.importorskip("facezoo.morphable.procedural")
    out = tmp_path / "proc.h5"
    assert run(["convert", "--format", "procedural", "--n-vertices", "800", "-o", str(out)]) == 0
    model = load_model(out)
    assert model.n_vertices >= 600 and model.n_id > 0
    assert run(["convert", "--format", "sfm", "-o", str(tmp_path / "x.h5")]) == 2
    assert "--format sfm needs SRC" in capsys.readouterr().err
    assert run(["convert", str(tmp_path / "nope"), "--format", "ict", "-o", str(tmp_path / "x.h5")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "bad.h5").write_text("x")
    assert run(["info", str(tmp_path / "bad.h5")]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err


def test_convert_real_sfm_and_ict(shared_data, tmp_path, capsys):
    for fmt, src in (("sfm", shared_data / "sfm"), ("ict", shared_data / "ict_facekit")):
        out = tmp_path / f"{fmt}.h5"
        assert run(["convert", str(src), "--format", fmt, "-o", str(out)]) == 0
        text = capsys.readouterr().out
        assert ("3448" in text) if fmt == "sfm" else ("11248" in text)
        assert load_model(out).n_vertices == (3448 if fmt == "sfm" else 11248)


def test_info_reads_a_source_model_directly(shared_data, capsys):
    assert run(["info", str(shared_data / "sfm"), "--format", "sfm", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["vertices"], info["triangles"], info["n_id"], info["n_exp"]) == (3448, 6736, 63, 6)
    assert info["landmarks"] == 68 and info["units"] == "mm"


@pytest.mark.parametrize("fmt", ["sfm", "ict", "bfm-deep3d"])
def test_convert_needs_a_source(fmt, tmp_path, capsys):
    assert run(["convert", "--format", fmt, "-o", str(tmp_path / "x.h5")]) == 2
    assert "needs SRC" in capsys.readouterr().err

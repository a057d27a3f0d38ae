"""`facezoo model convert | info | preview` end to end, in-process."""

import json

import pytest
from PIL import Image

from facezoo.cli import main
from facezoo.morphable import load_model


def test_convert_info_preview_procedural(tmp_path, capsys):
    out = tmp_path / "proc.h5"
    assert main(["model", "convert", "--format", "procedural", "--n-vertices", "800", "-o", str(out)]) == 0
    model = load_model(out)
    assert model.n_vertices == int(model.mean.shape[0]) and model.landmarks68.numel() == 68
    capsys.readouterr()

    assert main(["model", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["vertices"] == model.n_vertices and info["n_id"] == model.n_id and info["units"] == "mm"

    png = tmp_path / "preview.png"
    assert main(["model", "preview", str(out), "-o", str(png), "--size", "64"]) == 0
    image = Image.open(png)
    assert image.width == 5 * 64 and image.height >= 64  # mean, +-sigma of id[0] and exp[0]


def test_info_reads_a_source_model_directly(shared_data, capsys):
    assert main(["model", "info", str(shared_data / "sfm"), "--format", "sfm", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["vertices"], info["triangles"], info["n_id"], info["n_exp"]) == (3448, 6736, 63, 6)
    assert info["landmarks"] == 68 and info["units"] == "mm"


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["model", "convert", str(missing), "--format", "sfm", "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "sfm_shape" in err


@pytest.mark.parametrize("fmt", ["sfm", "ict", "bfm-deep3d"])
def test_convert_needs_a_source(fmt, tmp_path, capsys):
    assert main(["model", "convert", "--format", fmt, "-o", str(tmp_path / "x.h5")]) == 2
    assert "needs SRC" in capsys.readouterr().err

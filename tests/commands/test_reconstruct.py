"""``facezoo reconstruct`` end to end: synthetic photos with landmark files (fit, regress, regress+fit), the
errors a user can make, the optional detector, and the real Deep3DFace example photos (skipped when
../shared/data is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from facezoo.callbacks.panels import save_png

from facezoo.cli import main
from facezoo.data.landmarks import landmarks68_to_5
from facezoo.geometry import WeakPerspective, euler_to_matrix
from facezoo.methods.base import build_morphable
from facezoo.render import MeshRenderer

SHARED = Path(os.environ.get("FACEZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MODEL = "procedural:1000:6:3:6"


def _write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in pts)
    path.write_text(f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two rendered faces (80x96 and 96x96 px) with .pts (68) and detections/*.txt (5) landmark files."""
    d = tmp_path_factory.mktemp("photos")
    (d / "detections").mkdir()
    model = build_morphable(MODEL)
    truth = {}
    for name, size, yaw, ident in (("a", (80, 96), 0.3, 1.0), ("b", (96, 96), -0.2, -1.0)):
        h, w = size
        cam = WeakPerspective(torch.tensor([0.4]), euler_to_matrix(torch.tensor([[0.0, yaw, 0.0]])),
                              torch.tensor([[w / 2, h / 2 + 4]]))  # fmt: skip
        coef = torch.zeros(1, 6)
        coef[0, 0] = ident
        verts = model(coef, None)
        img = MeshRenderer((h, w))(
            verts,
            model.triangles,
            cam,
            colors=model.texture(None),
            lighting=torch.tensor([[0.9] + [0.0] * 8]),
            background=0.3,
        ).image[0]
        save_png(img, d / f"{name}.png")
        lm = cam.project(model.landmarks(verts))[0].double().numpy()
        if name == "a":
            _write_pts(d / "a.pts", lm)
        else:
            np.savetxt(d / "detections" / "b.txt", landmarks68_to_5(lm), delimiter="\t")
        truth[name] = lm
    return d, truth


def test_fit_writes_every_export(photos, tmp_path, capsys):
    d, truth = photos
    out = tmp_path / "out"
    assert main(["reconstruct", str(d), "--model", MODEL, "--method", "fit", "--out", str(out)]) == 0
    for stem in ("a", "b"):
        for suffix in (".obj", "_overlay.png", ".json", ".npz"):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
        meta = json.loads((out / f"{stem}.json").read_text())
        lm2d = np.array(meta["landmarks2d"])
        assert lm2d.shape == (68, 2)
        assert meta["method"] == "fit" and meta["checkpoint"] is None and meta["model"]
        # the reconstruction's landmarks are where the face is in the photo (pixels of the photo)
        err = np.linalg.norm(lm2d - truth[stem], axis=-1).mean()
        assert err < (1.0 if stem == "a" else 4.0)
        npz = np.load(out / f"{stem}.npz")
        assert npz["params_id"].shape == (6,) and npz["landmarks2d"].shape == (68, 2)
    assert (out / "contact_sheet.png").is_file()
    obj = (out / "a.obj").read_text().splitlines()
    assert any(line.startswith("v ") and len(line.split()) == 7 for line in obj)  # per-vertex colours


def _checkpoint(path: Path) -> Path:
    from facezoo.methods import Deep3DFace

    torch.manual_seed(0)
    method = Deep3DFace(MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=32)
    hp = {**dict(method.hparams), "_class_path": "facezoo.methods.Deep3DFace"}
    torch.save({"state_dict": method.state_dict(), "hyper_parameters": hp}, path)
    return path


def test_regress_and_regress_plus_fit(photos, tmp_path):
    d, truth = photos
    ckpt = _checkpoint(tmp_path / "tiny.ckpt")
    metas = {}
    for method in ("regress", "regress+fit"):
        out = tmp_path / method
        assert main(["reconstruct", str(d / "a.png"), "--model", str(ckpt), "--method", method,
                     "--out", str(out)]) == 0  # fmt: skip
        metas[method] = json.loads((out / "a.json").read_text())
        assert metas[method]["checkpoint"] == str(ckpt) and metas[method]["model"] == "Deep3DFace"
        assert (out / "a_overlay.png").is_file() and (out / "contact_sheet.png").is_file()
    err = {
        m: np.linalg.norm(np.array(v["landmarks2d"]) - truth["a"], axis=-1).mean() for m, v in metas.items()
    }
    # an untrained network regresses the mean face at its default pose; the fit then finds the face
    assert err["regress+fit"] < 0.2 * err["regress"] and err["regress+fit"] < 2.0
    assert metas["regress+fit"]["camera"]["type"] == "Perspective"  # the network's camera kind is kept


def test_user_errors(photos, tmp_path, capsys):
    d, _ = photos
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "x.png").write_bytes((d / "a.png").read_bytes())
    assert main(["reconstruct", str(lonely), "--model", MODEL, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "x.png" in err and "no landmark file" in err and "facezoo[landmarks]" in err
    assert (
        main(["reconstruct", str(d), "--model", MODEL, "--method", "regress", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "needs a network" in capsys.readouterr().err
    assert (
        main(["reconstruct", str(tmp_path / "nothing"), "--model", MODEL, "--out", str(tmp_path / "o")]) == 2
    )
    assert "no such photo" in capsys.readouterr().err
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "os.system"}}, bad)
    assert (
        main(
            ["reconstruct", str(d), "--model", str(bad), "--method", "regress", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "is not a facezoo method" in capsys.readouterr().err


def _dlib_ready() -> bool:
    try:
        import dlib  # noqa: F401
        import face_recognition_models  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not (SHARED / "deep3d_examples").is_dir(), reason="no shared data")
def test_dlib_detector_agrees_with_the_five_point_files():
    """The detector's 68 points, reduced to five, land on the examples' own 5-point detections; without the
    extra the error names it."""
    from facezoo.data.io import load_image
    from facezoo.data.landmarks import read_txt_points
    from facezoo.photos import DlibLandmarkDetector

    if not _dlib_ready():
        with pytest.raises(ImportError, match=r"facezoo\[landmarks\]"):
            DlibLandmarkDetector()
        return
    det = DlibLandmarkDetector()
    root = SHARED / "deep3d_examples"
    for name in ("000002", "015259"):
        photo = next(root.glob(f"{name}.*"))
        lm = det(load_image(photo))
        five = landmarks68_to_5(lm)
        ref = read_txt_points(root / "detections" / f"{name}.txt")
        eye_dist = np.linalg.norm(ref[0] - ref[1])
        assert np.linalg.norm(five - ref, axis=-1).mean() < 0.25 * eye_dist


@pytest.mark.skipif(not (SHARED / "deep3d_examples").is_dir(), reason="no shared data")
def test_real_deep3d_example_photos(tmp_path):
    root = SHARED / "deep3d_examples"
    picks = [str(root / n) for n in ("000002.jpg", "vd006.png")]
    out = tmp_path / "real"
    assert (
        main(["reconstruct", *picks, "--model", "procedural:1000", "--method", "fit", "--out", str(out)]) == 0
    )
    for p in picks:
        stem = Path(p).stem
        meta = json.loads((out / f"{stem}.json").read_text())
        assert meta["landmarks_source"].endswith(f"detections/{stem}.txt")
        assert meta["nme"] < 0.05  # the model's five points lie on the detections
        assert (out / f"{stem}_overlay.png").is_file() and (out / f"{stem}.obj").is_file()
    assert (out / "contact_sheet.png").is_file()

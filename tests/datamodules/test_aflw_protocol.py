"""`facezoo test` on AFLW2000-3D: the protocol table (yaw buckets, mean of bucket means) and its JSON, against
NMEs computed by hand from predictions the test controls."""

import json

import numpy as np
import pytest
from scipy.io import loadmat

from facezoo.cli import main
from facezoo.methods import Deep3DFace

# yaw (degrees) -> the NME the test's prediction is built to have (fraction of sqrt(w h) of the GT box).
# Unequal buckets (3 / 2 / 1 images): the per-image mean and the mean of the bucket means differ.
FACES = [(10, 0.02), (-25, 0.04), (5, 0.09), (40, 0.05), (-55, 0.07), (80, 0.10)]


@pytest.fixture
def aflw_unequal(tmp_path, make_image, make_3ddfa_mat):
    rng = np.random.default_rng(7)
    root = tmp_path / "AFLW2000"
    for i, (yaw, _) in enumerate(FACES):
        make_image(root / f"image{i:05d}.jpg", rng)
        make_3ddfa_mat(root / f"image{i:05d}.mat", rng, yaw, n2d=21, pt3d=True)
    return root


def _controlled_predictions(monkeypatch, root):
    """Replace the network's landmarks by ground truth + an offset of exactly NME_i * sqrt(w h) pixels (in the
    original image, along x), mapped into the crop with the sample's affine."""
    wanted = {f"image{i:05d}": nme for i, (_, nme) in enumerate(FACES)}
    real = Deep3DFace.reconstruct

    def reconstruct(self, batch, render=False):
        rec = real(self, batch, render)
        out = rec.landmarks2d.clone()
        for j, path in enumerate(batch["path"]):
            name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            gt = loadmat(root / f"{name}.mat")["pt3d_68"][:2].T  # original-image pixels, [68, 2]
            wh = gt.max(0) - gt.min(0)
            pred = gt + np.array([wanted[name] * np.sqrt(wh[0] * wh[1]), 0.0])
            a = batch["affine"][j].double().numpy()  # original -> crop
            out[j] = out.new_tensor(pred @ a[:, :2].T + a[:, 2])
        rec.landmarks2d = out
        return rec

    monkeypatch.setattr(Deep3DFace, "reconstruct", reconstruct)


def test_facezoo_test_bucket_table_and_json_match_hand_computed_nme(
    aflw_unequal, tmp_path, capsys, monkeypatch
):
    _controlled_predictions(monkeypatch, aflw_unequal)
    args = [
        "test",
        "--model=facezoo.methods.Deep3DFace",
        "--model.morphable_model=procedural:600",
        "--model.backbone=resnet18",
        "--model.backbone_kwargs={width: 8}",
        "--model.image_size=48",
        "--data=facezoo.datamodules.AFLW2000",
        f"--data.root={aflw_unequal}",
        "--data.image_size=48",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    main(args)
    out = capsys.readouterr().out
    assert "test results" in out

    # by hand: 3DDFA's buckets |yaw| in [0,30], (30,60], (60,90]; headline = mean of the bucket means
    buckets = {"nme_0_30": [0.02, 0.04, 0.09], "nme_30_60": [0.05, 0.07], "nme_60_90": [0.10]}
    means = {k: float(np.mean(v)) for k, v in buckets.items()}
    per_image = [nme for _, nme in FACES]
    expected = {
        **means,
        "nme": float(np.mean(per_image)),
        "nme_std": float(np.std(per_image)),
        "nme_balanced": float(np.mean(list(means.values()))),
    }
    assert expected["nme"] == pytest.approx(0.37 / 6) and expected["nme_balanced"] == pytest.approx(0.07)

    results = json.loads((tmp_path / "test_results.json").read_text())["metrics"]
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    # the printed table shows the logged fractions
    for column in ("nme_0_30", "nme_30_60", "nme_60_90", "nme_balanced"):
        assert column in out
    assert f"{expected['nme_balanced']:.4f}" in out and f"{expected['nme']:.4f}" in out

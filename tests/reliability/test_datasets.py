"""Dataset readers on bad input: 300W-LP triplets that do not exist, 3DDFA parameters of the wrong length or
non-finite, MICC with malformed annotations/correspondences, no scans, or frames_per_subject 0."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _reliability import TINY_METHOD, writers
from facezoo.datamodules import MICCDataset, W300LPDataset, read_micc_annotations
from scipy.io import loadmat, savemat

from facezoo.cli import main
from facezoo.data import BadSampleError


def test_w300lp_triplet_mode_without_triplets_names_root_and_what_is_missing(w300lp_root):
    for flip in ("AFW_Flip", "IBUG_Flip"):  # the mirrors hold the other side's yaws: without them, no triplet
        shutil.rmtree(w300lp_root / flip)
    with pytest.raises(
        ValueError, match=rf"{w300lp_root}.*no \(frontal, left, right\) triplet.*left yaw <= -15"
    ):
        W300LPDataset(w300lp_root, mode="triplet", image_size=32)
    assert len(W300LPDataset(w300lp_root, mode="single", image_size=32)) == 5


def test_w300lp_real_sample_has_no_triplet(shared_data):
    with pytest.raises(ValueError, match="300w_lp.*no \\(frontal, left, right\\) triplet"):
        W300LPDataset(shared_data / "300w_lp", mode="triplet", image_size=32)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("Shape_Para", np.zeros((198, 1)), r"Shape_Para must hold 199 finite values.*\(198, 1\)"),
        ("Exp_Para", np.zeros((10, 1)), r"Exp_Para must hold 29 finite values"),
        ("Exp_Para", np.full((29, 1), np.nan), r"Exp_Para must hold 29 finite values.*NaN"),
    ],
    ids=["shape-198", "exp-10", "exp-nan"],
)
def test_3ddfa_parameters_checked_on_read_naming_the_file(w300lp_root, key, value, message):
    mat_path = w300lp_root / "AFW" / "AFW_111_1_1.mat"
    mat = loadmat(mat_path)
    mat[key] = value
    savemat(mat_path, {k: v for k, v in mat.items() if not k.startswith("__")})
    ds = W300LPDataset(w300lp_root, image_size=32)
    index = next(i for i, r in enumerate(ds.records) if r["mat"] == mat_path)
    with pytest.raises(BadSampleError, match=rf"AFW_111_1_1\.mat: {message}"):
        ds[index]


@pytest.fixture
def micc_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "MICC"
    for s in (1, 2):
        writers.write_micc_scan(root, s)
        for f in range(2):
            writers.write_image(root / "frames" / f"subject_{s:02d}" / "PTZ-Indoor" / f"f{f}.jpg", rng, 48)
    return root


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"subjects": []}), json.dumps({"cases": [{"frame": "x.jpg"}]})],
    ids=["not-json", "no-cases", "case-without-correspondences"],
)
def test_micc_malformed_annotations_name_the_file(tmp_path, content):
    path = tmp_path / "annotations.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"{path}: not a MICC annotations file"):
        read_micc_annotations(path)


def test_micc_malformed_correspondences_name_the_file(tmp_path):
    corr = tmp_path / "cases" / "subject_3" / "correspondences.txt"
    corr.parent.mkdir(parents=True)
    corr.write_text("nose_base 123\nlips_central twelve\n")
    path = tmp_path / "annotations.json"
    path.write_text(
        json.dumps({"cases": [{"correspondences": "cases/subject_3/correspondences.txt", "frame": "f.jpg"}]})
    )
    with pytest.raises(ValueError, match=rf"{corr}: line 2: expected 'name vertex_id'"):
        read_micc_annotations(path)


def test_micc_frames_per_subject_zero(micc_root):
    with pytest.raises(ValueError, match="frames_per_subject: expected a positive integer, got 0"):
        MICCDataset(micc_root, group="subject", frames_per_subject=0, image_size=32)


def test_micc_without_scans_fails_before_the_test_loop(micc_root, tmp_path, capsys, monkeypatch):
    from facezoo.methods.protocols.micc import MICCProtocol

    updates = []
    monkeypatch.setattr(MICCProtocol, "update", lambda self, method, batch: updates.append(batch))
    shutil.rmtree(micc_root / "subject_02" / "Model")
    rc = main(
        [
            "test",
            *TINY_METHOD,
            "--data=facezoo.datamodules.MICC",
            f"--data.root={micc_root}",
            "--data.image_size=48",
            "--data.num_workers=0",
            "--data.batch_size=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2 and "no ground-truth scan" in captured.err and "[2]" in captured.err
    assert updates == []  # refused when the protocol starts, before any batch is evaluated

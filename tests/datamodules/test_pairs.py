"""Verification pairs: LFW's pairs.txt layout and the rendered SyntheticPairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from facezoo.datamodules import LFWPairs, PairsDataset, SyntheticPairs, read_pairs
from PIL import Image

from facezoo.data.sample import collate


@pytest.fixture
def lfw_root(tmp_path):
    """Four people, LFW's names and numbering, a 2-fold pairs.txt with one same and one different pair each;
    the images are flat colours so that the central crop can be checked."""
    colours = {"Ann_Lee": 10, "Bo_Li": 80, "Cy_Ma": 150, "Di_Xu": 220}
    for name, c in colours.items():
        for k in (1, 2):
            d = tmp_path / name
            d.mkdir(exist_ok=True)
            Image.fromarray(np.full((250, 250, 3), c + k, np.uint8)).save(
                d / f"{name}_{k:04d}.jpg", quality=100
            )
    (tmp_path / "pairs.txt").write_text(
        "2\t1\nAnn_Lee\t1\t2\nAnn_Lee\t1\tBo_Li\t2\nCy_Ma\t1\t2\nCy_Ma\t2\tDi_Xu\t1\n"
    )
    return tmp_path, colours


def test_read_pairs_lfw_layout(lfw_root):
    root, _ = lfw_root
    n_folds, pairs = read_pairs(root / "pairs.txt")
    assert n_folds == 2
    assert pairs == [("Ann_Lee", 1, "Ann_Lee", 2, True, 0), ("Ann_Lee", 1, "Bo_Li", 2, False, 0),
                     ("Cy_Ma", 1, "Cy_Ma", 2, True, 1), ("Cy_Ma", 2, "Di_Xu", 1, False, 1)]  # fmt: skip
    bad = root / "bad.txt"
    for text, match in (
        ("ten\n", "header"),
        ("1 2\nA 1 2\n", "found 1 lines"),
        ("1 1\nA 1 B 2\nA 1 2\n", "line 2"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_pairs(bad)
    bad.write_text("1\nA 1 2\nA 1 B 2\n")  # pairsDevTrain-style one-number header: one block, 10 folds
    assert read_pairs(bad)[0] == 10 and [p[4] for p in read_pairs(bad)[1]] == [True, False]


def test_pairs_dataset_yields_both_crops_and_labels(lfw_root):
    root, colours = lfw_root
    ds = PairsDataset(root, image_size=32)
    assert len(ds) == 4 and ds.n_folds == 2
    s = ds[1]
    assert s["image"].shape == (2, 3, 32, 32) and s["affine"].shape == (2, 2, 3)
    assert not bool(s["same"]) and s["pair_index"] == 1 and s["fold"] == 0 and s["index"] == 1
    # flat images: the crop keeps each image's colour (Ann_Lee_0001 then Bo_Li_0002)
    expect = torch.tensor([colours["Ann_Lee"] + 1, colours["Bo_Li"] + 2]) / 255.0
    assert torch.allclose(s["image"].mean((1, 2, 3)), expect, atol=2 / 255)
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 2, 3, 32, 32) and batch["same"].tolist() == [True, False]
    dm = LFWPairs(root=str(root), image_size=32, batch_size=2, num_workers=0)
    assert dm.protocol == "verification" and dm.n_folds == 2
    assert next(iter(dm.test_dataloader()))["pair_index"].tolist() == [0, 1]
    with pytest.raises(RuntimeError, match="evaluation"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="center_fraction"):
        PairsDataset(root, center_fraction=1.5)


def test_synthetic_pairs_have_lfw_layout():
    dm = SyntheticPairs("procedural:600", image_size=32, num_pairs=8, n_folds=2, batch_size=8)
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (8, 2, 3, 32, 32)
    assert batch["same"].tolist() == [True, True, False, False] * 2
    assert batch["fold"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and batch["pair_index"].tolist() == list(
        range(8)
    )
    ident = batch["identity"]
    assert (ident[:, 0] == ident[:, 1]).tolist() == batch["same"].tolist()
    assert not torch.equal(batch["image"][0, 0], batch["image"][0, 1])  # same person, another image
    with pytest.raises(ValueError, match="num_pairs"):
        SyntheticPairs(num_pairs=30, n_folds=10)

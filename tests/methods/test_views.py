"""The view-axis convention: image sets through reconstruct, evaluate, the metrics and the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningDataModule

from facezoo.cli import main
from facezoo.methods.views import flatten_views, num_views, unflatten_views
from facezoo.metrics import LandmarkNME

ZOO = Path(__file__).resolve().parents[2] / "zoo"


def test_flatten_views_is_sample_major_and_repeats_per_sample_keys():
    b, v = 2, 3
    image = torch.arange(b * v, dtype=torch.float32)[:, None, None, None].expand(b * v, 3, 4, 4)
    batch = {
        "image": image.reshape(b, v, 3, 4, 4), "yaw": torch.arange(6.0).reshape(b, v),
        "affine": torch.arange(36.0).reshape(b, v, 2, 3), "identity": torch.tensor([5, 9]),
        "path": ["a", "b"], "params": {"vertices": torch.arange(6.0).reshape(b, v, 1, 1).expand(b, v, 4, 3)},
        "valid": {"params.vertices": torch.tensor([False, True])}, "skipped": [],
    }  # fmt: skip
    flat = flatten_views(batch)
    assert num_views(batch) == 3 and num_views(flat) == 1
    assert flat["image"][:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]  # row b*V + v
    assert flat["yaw"].tolist() == [0, 1, 2, 3, 4, 5] and flat["affine"][4].flatten().tolist()[0] == 24
    assert flat["identity"].tolist() == [5, 5, 5, 9, 9, 9] and flat["path"] == ["a"] * 3 + ["b"] * 3
    assert flat["valid"]["params.vertices"].tolist() == [False] * 3 + [True] * 3
    assert flat["params"]["vertices"][:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5] and flat["skipped"] == []
    assert torch.equal(unflatten_views(flat["yaw"], 3), batch["yaw"])
    assert flatten_views({"image": torch.zeros(2, 3, 4, 4)})["image"].shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"params.id: a batch of 2 samples x 3 views needs \[2,3,...\]"):
        flatten_views({**batch, "params": {"id": torch.zeros(2, 7)}})
    with pytest.raises(ValueError, match="image"):
        num_views({"image": torch.zeros(2, 4, 4)})


def test_evaluate_on_image_sets_matches_the_flat_images(tiny_method, tiny_data):
    """yaw [B,V] and affine [B,V,2,3] reach LandmarkNME per image: the same figures as the images fed one
    by one to an independent LandmarkNME."""
    method = tiny_method().eval()
    sets = next(iter(tiny_data(set_size=3, batch_size=2, yaw_range=60.0).val_dataloader()))
    sets["affine"] = torch.eye(2, 3, dtype=torch.float64).expand(2, 3, 2, 3).clone()
    sets["affine"][..., 2] = 7.0  # a crop offset: NME in the original image
    with torch.no_grad():
        rec = method.reconstruct(sets)
        method.evaluate(rec, sets)
    assert len(rec) == 6 and rec.views == 3
    reference = LandmarkNME()
    reference.update(
        rec.landmarks2d, sets["landmarks68"].flatten(0, 1), yaw=sets["yaw"].flatten(0, 1),
        crop_transform=sets["affine"].flatten(0, 1),
    )  # fmt: skip
    got, want = method.val_nme.compute(), reference.compute()
    assert int(method.val_nme.count) == 6
    for key in ("nme", "nme_0_30", "nme_30_60", "nme_balanced"):
        assert torch.allclose(got[key], want[key], equal_nan=True), key
    assert method.val_vertex_error.update_count == 1


def test_evaluate_refuses_ground_truth_of_another_model(tiny_method, tiny_data):
    method = tiny_method(morphable_model="procedural:1000")
    dm = tiny_data()  # procedural:600

    class FakeTrainer:
        datamodule = dm

    method._trainer = FakeTrainer()
    with pytest.raises(
        ValueError,
        match=r"SyntheticFaces renders faces of morphable_model='procedural:600' \("
        r"\d+ vertices\) and Deep3DFace reconstructs with morphable_model='procedural.*",
    ):
        method.setup("validate")
    method._trainer = None
    batch = next(iter(dm.val_dataloader()))
    with pytest.raises(ValueError, match=r"params\['vertices'\].*do not match"):
        method.evaluate(method.reconstruct(batch), batch)


def test_validation_asks_for_the_protocol_keys_only(tiny_method):
    """Validation only reconstructs: a datamodule without landmarks (whose vertex error runs on
    params['vertices']) validates, while training still needs the landmarks."""

    class NoLandmarks(LightningDataModule):
        provides = ("image", "params")

    class FakeTrainer:
        datamodule = NoLandmarks()

    method = tiny_method()
    method._trainer = FakeTrainer()
    method.setup("validate")
    method.setup("test")
    with pytest.raises(ValueError, match=r"\(fit\) needs batch key\(s\) \['landmarks68'\]"):
        method.setup("fit")


def test_cnet_config_fits_as_typed_and_validates_on_image_sets(tmp_path):
    """`facezoo fit --config zoo/deep3d-cnet.yaml --config zoo/data/synthetic.yaml`, made small: a fresh
    R-Net with a warning (no rnet_checkpoint), C-Net training and validation on image sets of 5."""
    with pytest.warns(UserWarning, match="no rnet_checkpoint given"):
        main([
            "fit", f"--config={ZOO / 'deep3d-cnet.yaml'}", f"--config={ZOO / 'data' / 'synthetic.yaml'}",
            "--model.morphable_model=procedural:600", "--data.morphable_model=procedural:600",
            "--model.backbone=resnet18", "--model.backbone_kwargs={width: 8}", "--model.image_size=32",
            "--data.image_size=32", "--data.batch_size=2", "--data.num_train=4", "--data.num_val=2",
            "--data.num_workers=0", "--trainer.max_steps=2", "--trainer.val_check_interval=2",
            "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
            f"--trainer.default_root_dir={tmp_path}", "--trainer.log_every_n_steps=1",
        ])  # fmt: skip
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    val = [r for r in rows if r.get("val/nme")]
    assert len(val) == 1 and float(val[0]["val/nme"]) > 0 and float(val[0]["val/vertex_error_mm"]) > 0
    assert any(r.get("train/loss_lan") for r in rows)
    assert {"train/loss_photo", "train/loss_per", "train/loss"} <= set(rows[0])


def test_evaluate_leaves_out_placeholder_rows(tiny_method, tiny_data):
    """A mixed batch whose landmarks / vertices are zero-filled in some rows: those rows count in neither
    metric (the placeholders would otherwise give a huge NME and a vertex error against the origin)."""
    method = tiny_method().eval()
    batch = next(iter(tiny_data(batch_size=4).val_dataloader()))
    with torch.no_grad():
        rec = method.reconstruct(batch)
    keep = torch.tensor([True, False, True, True])
    mixed = dict(batch, landmarks68=batch["landmarks68"].clone(), params=dict(batch["params"]))
    mixed["landmarks68"][1] = 0.0
    mixed["params"]["vertices"] = batch["params"]["vertices"].clone()
    mixed["params"]["vertices"][2:] = 0.0
    mixed["valid"] = {"landmarks68": keep, "params.vertices": torch.tensor([True, True, False, False])}
    out = method.evaluate(rec, mixed)
    reference = tiny_method().eval()
    sub = {"landmarks68": batch["landmarks68"][keep], "image": batch["image"][keep]}
    ref = reference.evaluate(rec[keep], sub)
    assert int(method.val_nme.count) == 3 and torch.allclose(out["nme"], ref["nme"])
    vert = reference.evaluate(
        rec[:2], {"image": batch["image"][:2], "params": {"vertices": batch["params"]["vertices"][:2]}}
    )
    assert torch.allclose(out["vertex_error_mm"], vert["vertex_error_mm"])

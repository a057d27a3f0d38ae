import math

import pytest
import torch
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.methods import Deep3DFace

MODEL = "procedural:600"


def make(**kwargs):
    args = dict(morphable_model=MODEL, image_size=40, batch_size=3, num_train=6, num_val=3, num_test=3)
    args.update(kwargs)
    return SyntheticFaces(**args)


def test_single_images_have_complete_ground_truth():
    dm = make(occluder_prob=0.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 3, 40, 40) and 0 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["landmarks68"].shape == (3, 68, 2) and batch["landmarks5"].shape == (3, 5, 2)
    assert batch["mask"].shape == (3, 1, 40, 40) and batch["mask"].sum() > 0
    p = batch["params"]
    model = dm.model
    assert p["id"].shape == (3, model.n_id) and p["light"].shape == (3, 27)
    assert p["vertices"].shape == (3, model.n_vertices, 3)
    # ground truth is consistent: vertices from the coefficients, landmarks from the camera
    assert torch.allclose(p["vertices"], model(p["id"], p["exp"]), atol=1e-4)
    lm = dm.camera(p["angles"], p["translation"]).project(model.landmarks(p["vertices"]))
    assert torch.allclose(lm, batch["landmarks68"], atol=1e-4)
    assert torch.allclose(batch["yaw"], p["angles"][:, 1] * 180 / math.pi)
    assert set(batch) >= set(SyntheticFaces.provides)
    # the Deep3DFace camera of the same size agrees with the data's camera
    method = Deep3DFace(MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=40)
    assert torch.allclose(method.camera(p).project(model.landmarks(p["vertices"])), lm, atol=1e-4)


def test_deterministic_per_index_and_seed():
    a, b = make(occluder_prob=0.5), make(occluder_prob=0.5, cache=False)
    sa, sb = a.dataset("val")[2], b.dataset("val")[2]
    assert torch.equal(sa["image"], sb["image"]) and torch.equal(sa["params"]["id"], sb["params"]["id"])
    # rendered alone or in a batch: the same sample
    assert torch.allclose(b.dataset("val").__getitems__([0, 2])[1]["image"], sa["image"], atol=1e-5)
    c = make(seed=1)
    assert not torch.equal(c.dataset("val")[2]["params"]["id"], sa["params"]["id"])
    assert not torch.equal(a.dataset("test")[2]["params"]["id"], sa["params"]["id"])
    with pytest.raises(IndexError):
        a.dataset("val")[3]


def test_occluders_change_image_and_mask():
    clean, occluded = make(occluder_prob=0.0), make(occluder_prob=1.0)
    x, y = clean.dataset("train")[0], occluded.dataset("train")[0]
    assert torch.equal(x["params"]["id"], y["params"]["id"])
    assert y["mask"].sum() < x["mask"].sum() and not torch.equal(x["image"], y["image"])


def test_identity_sets_and_multiview_sets():
    sets = make(set_size=4, batch_size=2)
    batch = next(iter(sets.train_dataloader()))
    assert batch["image"].shape == (2, 4, 3, 40, 40) and batch["landmarks68"].shape == (2, 4, 68, 2)
    ident, exp = batch["params"]["id"], batch["params"]["exp"]
    assert torch.equal(ident[:, 0], ident[:, 3]) and not torch.equal(exp[:, 0], exp[:, 1])
    assert batch["view"].tolist() == [[0, 1, 2, 3]] * 2
    mv = make(set_size=3, set_mode="multiview").dataset("train")[0]
    assert torch.equal(mv["params"]["exp"][0], mv["params"]["exp"][2])
    yaw = mv["yaw"]
    assert yaw[0] == 0 and yaw[1] > 20 and yaw[2] < -20
    with pytest.raises(ValueError, match="set_mode"):
        make(set_mode="video")


def test_pose_translation_and_background_options():
    dm = make(yaw_range=0.0, pitch_range=0.0, roll_range=0.0, shift_range=0.0, depth_range=0.0,
              background="plain")  # fmt: skip
    batch = next(iter(dm.test_dataloader()))
    p = batch["params"]
    assert torch.equal(p["angles"], torch.zeros_like(p["angles"]))
    assert torch.equal(p["translation"], torch.zeros_like(p["translation"]))
    # plain background: every uncovered pixel of an image has the same colour
    outside = batch["mask"][:, 0] == 0
    for img, out in zip(batch["image"], outside, strict=True):
        colours = img[:, out]
        assert colours.shape[1] > 0 and torch.allclose(colours, colours[:, :1].expand_as(colours))
    wide = make(depth_range=0.5).sample_params("train", 0)["translation"][0, 2]
    narrow = make(depth_range=0.1).sample_params("train", 0)["translation"][0, 2]
    assert torch.allclose(narrow, wide / 5)  # same random draw, scaled range
    with pytest.raises(ValueError, match="background"):
        make(background="noise")
    with pytest.raises(ValueError, match="depth_range"):
        make(depth_range=-1.0)

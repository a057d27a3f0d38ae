import numpy as np
import pytest
import torch
from facezoo.datamodules import W300LP, W300LPDataset

from facezoo.data import BadSampleError, collate, project_300wlp, unproject_300wlp


def test_single_samples_flip_folders_and_identity(w300lp_root):
    ds = W300LPDataset(w300lp_root, image_size=64)
    assert len(ds) == 10  # 5 images x (plain + _Flip)
    names = [r["image"].parent.name for r in ds.records]
    assert names.count("AFW_Flip") == 3 and names.count("IBUG") == 2
    ids = {(r["image"].parent.name, ds[i]["identity"]) for i, r in enumerate(ds.records)}
    # the _Flip copy of a face is the same identity; the two source faces differ
    assert {i for f, i in ids if f.startswith("AFW")} != {i for f, i in ids if f.startswith("IBUG")}
    assert len({i for f, i in ids if f.startswith("AFW")}) == 1
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and s["landmarks68"].shape == (68, 2)
    assert s["params"]["id"].shape == (199,) and s["params"]["pose"].shape == (7,)


def test_crop_pose_consistent_with_landmarks(w300lp_root):
    ds = W300LPDataset(w300lp_root, image_size=64, max_shift=0.05)
    for i in range(3):
        s = ds[i]
        r = ds.records[i]
        from facezoo.data import read_3ddfa_mat

        mat = read_3ddfa_mat(r["mat"])
        pose0 = torch.as_tensor(mat["pose"])[None]
        pts = torch.as_tensor(np.c_[mat["pt2d"], np.zeros(68)])[None]
        # recover model points from x, y and the depth consistent with the pose: use all three via full
        # projection
        v = unproject_300wlp(torch.cat([pts[..., :2], torch.zeros(1, 68, 1)], -1), pose0, 96)
        # only x,y matter for the check below: project the same points with the cropped pose
        lm = project_300wlp(v, s["params"]["pose"].double()[None], 64)[0, :, :2]
        torch.testing.assert_close(lm.float(), s["landmarks68"], atol=2e-3, rtol=0)


def test_triplets_left_frontal_right(w300lp_root):
    ds = W300LPDataset(w300lp_root, mode="triplet", image_size=32)
    # AFW face: frontal {5, -5}, left {-20, -40}, right {20, 40} -> 2*2*2; IBUG: frontal {-3, 3}, left -25,
    # right 25 -> 2
    assert len(ds) == 10
    s = ds[0]
    assert s["image"].shape == (3, 3, 32, 32) and s["landmarks68"].shape == (3, 68, 2)
    assert abs(s["yaw"][0]) <= 15 and s["yaw"][1] <= -15 and s["yaw"][2] >= 15
    assert s["view"].tolist() == [0, 1, 2]
    b = collate([ds[0], ds[1]])
    assert b["image"].shape == (2, 3, 3, 32, 32) and b["params"]["pose"].shape == (2, 3, 7)


def test_landmarks_folder_and_split(w300lp_root):
    ds = W300LPDataset(w300lp_root, landmark_source="landmarks", image_size=32)
    assert len(ds) == 5 and all(not r["flip"] for r in ds.records)
    ds[0]
    train = W300LPDataset(w300lp_root, split="train", val_fraction=0.5, image_size=32)
    val = W300LPDataset(w300lp_root, split="val", val_fraction=0.5, image_size=32)
    src = lambda d: {(r["subset"], r["source"]) for r in d.records}  # noqa: E731
    assert src(train).isdisjoint(src(val)) and len(train) + len(val) == 10


def test_bad_inputs(w300lp_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="300W-LP root"):
        W300LPDataset(tmp_path / "nope")
    ds = W300LPDataset(w300lp_root, image_size=32)
    ds.records[0]["mat"].write_bytes(b"not a mat file")
    with pytest.raises(BadSampleError, match="malformed .mat"):
        ds[0]
    ds.records[1]["mat"].unlink()
    with pytest.raises(BadSampleError, match=r"\.mat file is missing"):
        ds[1]
    ds.records[2]["image"].write_bytes(ds.records[2]["image"].read_bytes()[:300])
    with pytest.raises(BadSampleError, match="corrupt or truncated"):
        ds[2]
    skip = W300LPDataset(w300lp_root, image_size=32, on_bad_sample="skip")
    assert [len(skip[i]) > 1 for i in range(4)] == [False, False, False, True]  # bad samples are skip markers, never replaced
    assert "malformed .mat" in skip[0]["_skipped"][0] and skip[3]["index"] == 3


def test_datamodule_loader(w300lp_root):
    dm = W300LP(root=str(w300lp_root), batch_size=4, num_workers=0, image_size=32, p_flip=0.5)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)


def test_real_sample(shared_data):
    ds = W300LPDataset(shared_data / "300w_lp", image_size=128)
    s = ds[0]
    assert len(ds) == 1 and s["landmarks68"].shape == (68, 2)
    assert s["yaw"] == pytest.approx(np.degrees(-0.76809585), abs=1e-4)
    # landmarks fill the crop as the box scale says: box side = 128 / 1.25
    side = (s["landmarks68"].amax(0) - s["landmarks68"].amin(0)).max()
    assert side == pytest.approx(128 / 1.25, rel=1e-4)

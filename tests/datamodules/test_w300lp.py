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


# iBUG-68 mirror pairs written out by hand (0-based): jaw 0-16, brows 17-21 / 22-26, nose 27-35, eyes
# 36-41 / 42-47, outer lips 48-59, inner lips 60-67. Self-symmetric points map to themselves.
_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)]
)
_SELF = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def _mirror_permutation():
    perm = list(range(68))
    for a, b in _MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    assert sorted(perm) == list(range(68)) and all(perm[i] == i for i in _SELF)
    return perm


def _expected_box_crop(points, size, box_scale=1.25):
    """Square landmark-box crop by hand: the box centre goes to the crop centre and the longer side of the
    landmarks' box to ``size / box_scale`` pixels."""
    points = np.asarray(points, dtype=np.float64)
    lo, hi = points.min(0), points.max(0)
    k = size / (box_scale * (hi - lo).max())
    return (points - (lo + hi) / 2) * k + size / 2


def test_landmarks_folder_is_the_source_of_the_landmarks(w300lp_root):
    """``landmark_source="landmarks"`` crops with landmarks/<subset>/<name>_pts.mat's pts_3d (the fixture
    writes offset from the .mat's pt2d), not with pt2d; the _Flip images (no such file) are left out."""
    from scipy.io import loadmat

    ds = W300LPDataset(w300lp_root, landmark_source="landmarks", image_size=32)
    from_mat = W300LPDataset(w300lp_root, image_size=32)
    position = {r["image"]: j for j, r in enumerate(from_mat.records)}
    assert len(ds) == 5 and all(not r["flip"] for r in ds.records)
    for i, r in enumerate(ds.records):
        pts = loadmat(w300lp_root / "landmarks" / r["subset"] / f"{r['name']}_pts.mat")["pts_3d"]
        pt2d = loadmat(r["mat"])["pt2d"].T
        offset = pts - pt2d
        assert np.abs(offset).min() > 1 and np.allclose(offset, offset[0])  # the two sources differ
        np.testing.assert_allclose(ds[i]["landmarks68"].numpy(), _expected_box_crop(pts, 32), atol=1e-4)
        # the .mat source crops pt2d instead
        other = from_mat[position[r["image"]]]["landmarks68"].numpy()
        np.testing.assert_allclose(other, _expected_box_crop(pt2d, 32), atol=1e-4)


def test_split_is_identity_disjoint(w300lp_root):
    train = W300LPDataset(w300lp_root, split="train", val_fraction=0.5, image_size=32)
    val = W300LPDataset(w300lp_root, split="val", val_fraction=0.5, image_size=32)
    src = lambda d: {(r["subset"], r["source"]) for r in d.records}  # noqa: E731
    assert src(train).isdisjoint(src(val)) and len(train) + len(val) == 10


def test_flip_mirrors_landmarks_with_the_ibug_permutation(w300lp_root):
    """With p_flip=1 every training sample is the mirror of the unflipped one: x -> W - x and the 68 points
    permuted by the hand-written iBUG mirror pairs; image mirrored, yaw negated, shape labels dropped."""
    from facezoo.data.augment import Augment

    perm = _mirror_permutation()
    plain = W300LPDataset(w300lp_root, image_size=32)
    flipped = W300LPDataset(w300lp_root, image_size=32, transform=Augment(p_flip=1.0))
    for i in (0, 3, 7):
        a, b = plain[i], flipped[i]
        expected = a["landmarks68"][perm].clone()
        expected[:, 0] = 32 - expected[:, 0]
        torch.testing.assert_close(b["landmarks68"], expected)
        torch.testing.assert_close(b["image"], a["image"].flip(-1))
        assert b["yaw"] == -a["yaw"] and "id" not in b["params"] and "exp" not in b["params"]
    # the right eye's outer corner (36) of the flipped face is where the left eye's (45) was, mirrored
    torch.testing.assert_close(b["landmarks68"][36, 0], 32 - a["landmarks68"][45, 0])
    # the datamodule's training loader flips the same way (max_shift 0: no random box shift)
    dm = W300LP(root=str(w300lp_root), batch_size=2, num_workers=0, image_size=32, p_flip=1.0, max_shift=0.0)
    batch = next(iter(dm.train_dataloader()))
    for j, index in enumerate(batch["index"].tolist()):
        ref = plain[index]["landmarks68"][perm].clone()
        ref[:, 0] = 32 - ref[:, 0]
        torch.testing.assert_close(batch["landmarks68"][j], ref)


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
    # bad samples are skip markers, never replaced
    assert [len(skip[i]) > 1 for i in range(4)] == [False, False, False, True]
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

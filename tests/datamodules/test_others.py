import numpy as np
import pytest
import torch
from facezoo.datamodules import (
    AFLW2000,
    MICC,
    W300LP,
    AFLW2000Dataset,
    ImageFolder,
    ImageFolderDataset,
    MICCDataset,
    Mixture,
    MultiPIEDataset,
    VGGFace2,
    VGGFace2Dataset,
    read_micc_annotations,
)

from facezoo.data import BadSampleError, collate, yaw_bucket


def test_aflw2000_fixture_and_buckets(aflw_root):
    ds = AFLW2000Dataset(aflw_root, image_size=64)
    yaws = torch.tensor([ds[i]["yaw"] for i in range(3)])
    assert yaw_bucket(yaws).tolist() == [0, 1, 2]
    s = ds[0]
    assert s["landmarks68_3d"].shape == (68, 3)
    # evaluation box: sqrt(2) x the landmark box -> the landmarks span 64 / sqrt(2) pixels
    side = (s["landmarks68"].amax(0) - s["landmarks68"].amin(0)).max()
    assert float(side) == pytest.approx(64 / 2**0.5, rel=1e-4)
    dm = AFLW2000(root=str(aflw_root), batch_size=3, num_workers=0, image_size=64)
    assert next(iter(dm.test_dataloader()))["image"].shape == (3, 3, 64, 64)
    with pytest.raises(RuntimeError, match="no training split"):
        dm.train_dataloader()


def test_aflw2000_real(shared_data):
    ds = AFLW2000Dataset(shared_data / "aflw2000_3d", image_size=120)
    assert len(ds) == 10
    s = ds[0]
    assert s["image"].shape == (3, 120, 120) and s["image"].std() > 0.05
    assert (s["landmarks68"] > 0).all() and (s["landmarks68"] < 120).all()


def test_image_folder(tmp_path, shared_data, make_image):
    rng = np.random.default_rng(0)
    for n in ("a", "b", "c"):
        make_image(tmp_path / f"{n}.jpg", rng, 128)
    (tmp_path / "a.txt").write_text("40\t50\n88\t50\n64\t75\n45\t95\n83\t95\n")
    (tmp_path / "detections").mkdir()
    (tmp_path / "detections/b.txt").write_text("40 50\n88 50\n64 75\n45 95\n83 95\n")
    with pytest.raises(FileNotFoundError, match=r"(?s)1 of 3 images have no landmark file.*c\.jpg"):
        ImageFolderDataset(tmp_path)
    with pytest.warns(UserWarning):
        ds = ImageFolderDataset(tmp_path, missing_landmarks="ignore", image_size=112)
    assert len(ds) == 2 and ds[1]["landmarks5"].shape == (5, 2)
    (tmp_path / "a.txt").write_text("40\t50\n")
    with pytest.raises(BadSampleError, match=r"a\.txt: expected 68 or 5 landmarks, found 1"):
        ds[0]
    real = ImageFolderDataset(shared_data / "deep3d_examples")
    s = real[0]
    # Deep3DFace crops put the eyes in the upper half, level, about 60 px apart at 224
    eyes = s["landmarks5"][:2]
    assert 40 < float(eyes[1, 0] - eyes[0, 0]) < 80 and float(eyes[:, 1].mean()) < 112


def test_vggface2_and_pxk(tmp_path, make_image):
    rng = np.random.default_rng(0)
    root = tmp_path / "vggface2"
    meta = ["Class_ID, Name, Sample_Num, Flag, Gender"]
    for c in range(4):
        meta.append(f'n{c:06d}," ""Person_{c}""",3,1, m' if c % 2 else f'n{c:06d}," ""Person_{c}""",1, f,')
        for j in range(3):
            make_image(root / "train" / f"n{c:06d}" / f"{j:04d}_01.jpg", rng, 80)
    (root / "identity_meta.csv").write_text("\n".join(meta) + "\n")
    (root / "bb_landmark").mkdir()
    (root / "bb_landmark/loose_bb_train.csv").write_text('NAME_ID,X,Y,W,H\n"n000000/0000_01",10,10,50,60\n')
    (root / "bb_landmark/loose_landmark_train.csv").write_text(
        'NAME_ID,P1X,P1Y,P2X,P2Y,P3X,P3Y,P4X,P4Y,P5X,P5Y\n"n000001/0000_01",25,30,55,30,40,45,28,60,52,60\n'
    )
    ds = VGGFace2Dataset(root, image_size=64)
    assert len(ds) == 12 and ds.meta["n000000"]["sample_num"] is None and ds.labels[3] == 1
    assert "landmarks5" in ds[3] and "landmarks5" not in ds[0]
    dm = VGGFace2(root=str(root), p=2, k=3, num_workers=0, image_size=32)
    batch = next(iter(dm.train_dataloader()))
    ids = batch["identity"].tolist()
    assert len(ids) == 6 and sorted(set(ids.count(i) for i in set(ids))) == [3]


def test_multipie_triplets_and_subject_split(tmp_path, make_image):
    rng = np.random.default_rng(0)
    root = tmp_path / "mpie"
    for subject in range(1, 6):
        for cam in ("05_1", "14_0", "13_0", "05_0", "11_0"):
            name = f"{subject:03d}_01_01_{cam.replace('_', '')}_07.png"
            make_image(root / "session01/multiview" / f"{subject:03d}" / "01" / cam / name, rng, 64, "PNG")
    train = MultiPIEDataset(root, split="train", test_fraction=0.4, image_size=32)
    test = MultiPIEDataset(root, split="test", test_fraction=0.4, image_size=32)
    assert {r["subject"] for r in train.records}.isdisjoint({r["subject"] for r in test.records})
    assert len(train) == 3 * 2 and len(test) == 2 * 2  # per subject: 1 frontal x 2 left x 1 right
    s = train[0]
    assert s["image"].shape == (3, 3, 32, 32) and s["yaw"].tolist() == [0.0, -15.0, 15.0]
    bad = root / "session01/multiview/001/01/05_1/001_01_01_051_07.png"
    bad.rename(bad.with_name("001_01_01_140_07.png"))
    with pytest.raises(BadSampleError, match="name is not"):
        MultiPIEDataset(root)


def test_micc_frames_scans_annotations(tmp_path, shared_data, make_image, make_micc_scan):
    rng = np.random.default_rng(0)
    root = tmp_path / "MICC"
    for s in (1, 2):
        make_micc_scan(root, s)
        for vt in ("Indoor-Cooperative", "PTZ-Outdoor"):
            for f in range(3):
                make_image(root / "frames" / f"subject_{s:02d}" / vt / f"frame{f:04d}.jpg", rng, 72)
    ds = MICCDataset(root, image_size=32, annotations=shared_data / "micc/annotations.json")
    assert len(ds) == 12 and ds[0]["scan"].endswith("scan.obj") and ds[0]["identity"] == 1
    assert set(ds.scan_landmarks[1]) == {
        "right_eye_lacrimal",
        "left_eye_lacrimal",
        "nose_base",
        "lips_central",
    }
    grouped = MICC(
        root=str(root), group="subject", frames_per_subject=2, num_workers=0, image_size=32, batch_size=4
    )
    batch = next(iter(grouped.test_dataloader()))
    assert batch["image"].shape == (4, 2, 3, 32, 32) and batch["view"].tolist() == [0, 2, 0, 2]


def test_micc_real_annotations(shared_data):
    ann = read_micc_annotations(shared_data / "micc/annotations.json")
    assert len(ann) >= 50 and all(len(a["correspondences"]) == 4 for a in ann.values())


def test_mixture_draws_both_members(w300lp_root, tmp_path, make_image):
    rng = np.random.default_rng(0)
    for n in range(4):
        make_image(tmp_path / "faces" / f"{n}.jpg", rng, 64)
        (tmp_path / "faces" / f"{n}.txt").write_text("20 25\n44 25\n32 37\n22 48\n42 48\n")
    a = W300LP(root=str(w300lp_root), image_size=32, num_workers=0, batch_size=4)
    b = ImageFolder(root=str(tmp_path / "faces"), image_size=32, num_workers=0, batch_size=4)
    mix = Mixture([a, b], probabilities=[0.5, 0.5], blocks=4, num_batches=4, num_workers=0)
    mixed = [batch for batch in mix.train_dataloader() if "valid" in batch]
    assert mixed
    for batch in mixed:
        valid = batch["valid"]["landmarks5"]
        assert 0 < int(valid.sum()) < 16 and (batch["valid"]["params"] == ~valid).all()
        assert (batch["identity"][valid] == -1).all()


def test_collate_multiview_and_single_mismatch_is_an_error(w300lp_root):
    from facezoo.datamodules import W300LPDataset

    single = W300LPDataset(w300lp_root, image_size=16)[0]
    triplet = W300LPDataset(w300lp_root, mode="triplet", image_size=16)[0]
    with pytest.raises(ValueError, match="different shapes"):
        collate([single, triplet])

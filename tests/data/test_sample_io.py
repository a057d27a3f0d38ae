import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.data import BadSampleError, FaceDataset, ReportingDataLoader, collate, hflip_sample, load_image
from facezoo.data.augment import ColorJitter


def test_collate_stacks_and_marks_missing_keys():
    a = {"image": torch.zeros(3, 4, 4), "identity": 2, "path": "a"}
    b = {
        "image": torch.ones(3, 4, 4),
        "landmarks68": torch.ones(68, 2),
        "params": {"pose": torch.ones(7)},
        "path": "b",
    }
    batch = collate([a, b])
    assert batch["image"].shape == (2, 3, 4, 4) and batch["path"] == ["a", "b"]
    assert batch["identity"].tolist() == [2, -1] and batch["valid"]["identity"].tolist() == [True, False]
    assert batch["landmarks68"][0].abs().sum() == 0 and batch["valid"]["landmarks68"].tolist() == [
        False,
        True,
    ]
    assert batch["valid"]["params"].tolist() == [False, True]
    with pytest.raises(ValueError, match="different shapes"):
        collate([a, {"image": torch.zeros(3, 5, 5)}])


def test_load_image_errors(tmp_path):
    p = tmp_path / "x.jpg"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(p)
    assert load_image(p).shape == (3, 40, 40)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(BadSampleError, match="x.jpg: corrupt or truncated"):
        load_image(p)
    with pytest.raises(BadSampleError, match="missing"):
        load_image(tmp_path / "nope.jpg")


class _Toy(FaceDataset):
    def __init__(self, bad, on_bad_sample):
        super().__init__(on_bad_sample)
        self.items, self.bad = list(range(6)), bad

    def load(self, i):
        if i in self.bad:
            raise BadSampleError(f"f{i}.jpg", "broken")
        return {"image": torch.full((3, 2, 2), float(i))}


def test_skip_policy_counts_and_reports():
    with pytest.raises(BadSampleError, match="f2.jpg: broken"):
        _Toy({2}, "error")[2]
    loader = ReportingDataLoader(_Toy({2, 3}, "skip"), batch_size=3, collate_fn=collate)
    with pytest.warns(UserWarning, match="skipped 2 bad samples"):  # 2 and 3 dropped, nothing replaces them
        batches = list(loader)
    assert sum(len(b["image"]) for b in batches) == 4 and len(loader.skipped) == 2
    assert [b["index"].tolist() for b in batches] == [[0, 1], [4, 5]]
    assert batches[0]["skipped"] == ["f2.jpg: broken"] and batches[1]["skipped"] == ["f3.jpg: broken"]


def test_hflip_sample_is_an_involution_and_keeps_pose_consistent():
    s = {
        "image": torch.rand(3, 8, 10),
        "landmarks68": torch.rand(68, 2) * 10,
        "landmarks5": torch.rand(5, 2),
        "affine": torch.tensor([[1.0, 0, 2], [0, 1, 3]], dtype=torch.float64),
        "yaw": 30.0,
        "params": {"id": torch.ones(3), "pose": torch.tensor([0.1, 0.2, 0.3, 4.0, 5, 6, 7])},
    }
    f = hflip_sample(s)
    assert "id" not in f["params"] and f["yaw"] == -30.0
    torch.testing.assert_close(f["image"][..., 0], s["image"][..., -1])
    # the flipped affine maps an original point to the mirror of its old crop position
    p = torch.tensor([3.0, 4.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close((f["affine"] @ p)[0], 10 - (s["affine"] @ p)[0])
    ff = hflip_sample(f)
    for k in ("image", "landmarks68", "landmarks5", "affine"):
        torch.testing.assert_close(ff[k], s[k])
    torch.testing.assert_close(ff["params"]["pose"], s["params"]["pose"])


def test_color_jitter_multiview_range():
    out = ColorJitter(0.5, 0.5, 0.5, 0.1)({"image": torch.rand(3, 3, 16, 16)})
    assert out["image"].shape == (3, 3, 16, 16) and 0 <= out["image"].min() and out["image"].max() <= 1

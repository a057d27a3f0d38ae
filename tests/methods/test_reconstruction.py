import pytest
import torch

from facezoo.geometry import Perspective
from facezoo.methods import FaceReconstruction


def make(b=3):
    cam = Perspective(1000.0, (16.0, 16.0), torch.eye(3).expand(b, 3, 3), torch.zeros(b, 3))
    return FaceReconstruction(
        vertices=torch.arange(b * 12, dtype=torch.float32).reshape(b, 4, 3),
        triangles=torch.tensor([[0, 1, 2], [0, 2, 3]]),
        landmarks3d=torch.zeros(b, 68, 3),
        landmarks2d=torch.zeros(b, 68, 2),
        params={"id": torch.arange(b, dtype=torch.float32)[:, None]},
        camera=cam,
        meta={"index": torch.arange(b), "path": [f"f{i}" for i in range(b)]},
    )


def test_indexing_and_moves():
    rec = make()
    one = rec[1]
    assert len(one) == 1 and torch.equal(one.vertices[0], rec.vertices[1]) and one.meta["path"] == ["f1"]
    assert float(one.params["id"][0, 0]) == 1.0 and one.camera.batch_size == 1
    part = rec[torch.tensor([0, 2])]
    assert part.meta["path"] == ["f0", "f2"] and part.vertices.shape[0] == 2
    moved = rec.to("cpu").detach()
    assert torch.equal(moved.triangles, rec.triangles) and moved.colours is None


def test_validation():
    with pytest.raises(ValueError, match="vertices"):
        FaceReconstruction(torch.zeros(4, 3), torch.zeros(1, 3), torch.zeros(1, 68, 3), torch.zeros(1, 68, 2))

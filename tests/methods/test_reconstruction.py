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


def test_indexing_and_cpu_copies():
    rec = make()
    one = rec[1]
    assert len(one) == 1 and torch.equal(one.vertices[0], rec.vertices[1]) and one.meta["path"] == ["f1"]
    assert float(one.params["id"][0, 0]) == 1.0 and one.camera.batch_size == 1
    part = rec[torch.tensor([0, 2])]
    assert part.meta["path"] == ["f0", "f2"] and part.vertices.shape[0] == 2
    moved = rec.to("cpu").detach()
    assert torch.equal(moved.triangles, rec.triangles) and moved.colours is None


def test_to_casts_floating_tensors_and_keeps_indices():
    rec = make()
    moved = rec.to(dtype=torch.float64)
    assert moved.vertices.dtype == moved.landmarks2d.dtype == moved.params["id"].dtype == torch.float64
    assert moved.camera.focal.dtype == torch.float64 and torch.equal(moved.vertices, rec.vertices.double())
    assert moved.triangles.dtype == torch.int64 and moved.meta["index"].dtype == torch.int64
    assert rec.vertices.dtype == torch.float32  # a copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_to_moves_every_tensor_to_the_device():
    moved = make().to("cuda")
    assert moved.vertices.is_cuda and moved.triangles.is_cuda and moved.params["id"].is_cuda
    assert moved.camera.focal.is_cuda and moved.meta["index"].is_cuda
    back = moved.to("cpu")
    assert torch.equal(back.vertices, make().vertices)


def test_views_group_rows_and_indexing_ungroups():
    rec = make(6)
    rec.views = 3
    assert rec.detach().views == 3 and rec[1:3].views == 1
    with pytest.raises(ValueError, match="views"):
        FaceReconstruction(rec.vertices[:4], rec.triangles, rec.landmarks3d[:4], rec.landmarks2d[:4], views=3)


def test_validation():
    with pytest.raises(ValueError, match="vertices"):
        FaceReconstruction(torch.zeros(4, 3), torch.zeros(1, 3), torch.zeros(1, 68, 3), torch.zeros(1, 68, 2))

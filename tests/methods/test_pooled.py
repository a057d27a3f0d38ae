"""The "+pool" wrapper of single-view methods (methods/pooled.py) on multi-view sets."""

from __future__ import annotations

import pytest
import torch
from facezoo.datamodules.synthetic import SyntheticFaces

from facezoo.methods import Deep3DFace, PooledSingleView
from facezoo.methods.views import flatten_views

MODEL = "procedural:600"
ARGS = dict(morphable_model=MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=32)


@pytest.fixture(scope="module")
def batch():
    dm = SyntheticFaces(MODEL, image_size=32, batch_size=2, num_val=2, set_size=3, set_mode="multiview")
    return next(iter(dm.val_dataloader()))


def test_pooled_rows_are_the_mean_of_the_single_view_predictions(batch, tmp_path):
    torch.manual_seed(0)
    single = Deep3DFace(**ARGS).eval()
    with torch.no_grad():  # make the head non-trivial so that the views' predictions differ
        single.rnet.fc.weight.normal_(std=0.02)
    path = tmp_path / "single.ckpt"
    torch.save({"state_dict": single.state_dict()}, path)
    pooled = PooledSingleView("facezoo.methods.Deep3DFace", ARGS, checkpoint=str(path)).eval()
    with torch.no_grad():
        rows = single.reconstruct(flatten_views(batch))
        rec = pooled.reconstruct(batch)
    assert rec.views == 3 and len(rec) == 6
    mean0 = rows.vertices[:3].mean(0)
    assert not torch.allclose(rows.vertices[0], rows.vertices[1])
    for r in range(3):
        torch.testing.assert_close(rec.vertices[r], mean0)
    neutral = single.neutral_shape(rows)
    torch.testing.assert_close(pooled.neutral_shape(rec)[4], neutral[3:].mean(0))
    torch.testing.assert_close(rec.landmarks2d, rows.landmarks2d)  # cameras and 2D landmarks stay per view
    out = pooled.evaluate(rec, batch)
    assert out["vertex_error_mm"] > 0 and int(pooled.val_nme.count) == 6


def test_single_images_pass_through_and_bad_class_paths_are_named(batch):
    pooled = PooledSingleView(method_args=ARGS).eval()
    flat = flatten_views(batch)
    with torch.no_grad():
        a = pooled.reconstruct(flat)
        b = pooled.inner.reconstruct(flat)
    torch.testing.assert_close(a.vertices, b.vertices)
    with pytest.raises(ValueError, match="facezoo.methods.NoSuchMethod"):
        PooledSingleView("facezoo.methods.NoSuchMethod")
    with pytest.raises(ValueError, match="FaceMethod"):
        PooledSingleView("torch.nn.Linear")

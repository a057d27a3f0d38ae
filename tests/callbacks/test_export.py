from pathlib import Path

import numpy as np
import pytest
import torch
from facezoo.callbacks import PreviewGrid, ReconstructionWriter, write_mesh, write_obj
from facezoo.callbacks.panels import panels
from facezoo.datamodules.synthetic import SyntheticFaces
from lightning.pytorch import Trainer
from PIL import Image

from facezoo.methods import Deep3DFace

MODEL = "procedural:600"


def read_obj(path: Path):
    """An independent reader of the ``v x y z r g b`` / ``f i j k`` lines (comments skipped)."""
    v, c, f = [], [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            v.append([float(x) for x in parts[1:4]])
            c.append([float(x) for x in parts[4:7]])
        elif parts[0] == "f":
            f.append([int(x) - 1 for x in parts[1:4]])
    return np.array(v), np.array(c), np.array(f)


def test_write_obj_round_trip(tmp_path):
    v = torch.rand(5, 3) * 100
    tri = torch.tensor([[0, 1, 2], [2, 3, 4]])
    col = torch.rand(5, 3)
    vv, cc, ff = read_obj(write_obj(tmp_path / "m.obj", v, tri, col))
    assert np.allclose(vv, v.numpy(), atol=1e-4) and np.allclose(cc, col.numpy(), atol=1e-4)
    assert (ff == tri.numpy()).all()
    plain, _, _ = read_obj(write_obj(tmp_path / "plain.obj", v, tri))  # no colours: "v x y z"
    assert np.allclose(plain, v.numpy(), atol=1e-4)
    assert all(len(line.split()) == 4 for line in (tmp_path / "plain.obj").read_text().splitlines()
               if line.startswith("v "))  # fmt: skip
    over = torch.tensor([[1.5, -0.2, 0.5]] * 5)
    _, clamped, _ = read_obj(write_obj(tmp_path / "c.obj", v, tri, over))
    assert np.allclose(clamped, [[1.0, 0.0, 0.5]] * 5)
    with pytest.raises(ValueError, match="triangles"):
        write_obj(tmp_path / "bad.obj", v, torch.tensor([[0, 1, 5]]))
    with pytest.raises(ValueError, match=".obj"):
        write_obj(tmp_path / "m.ply", v, tri)


def test_write_mesh_ply_reads_back_with_open3d(tmp_path):
    import open3d as o3d

    v = torch.rand(5, 3, dtype=torch.float64) * 100
    tri = torch.tensor([[0, 1, 2], [2, 3, 4]])
    col = torch.tensor([[0.0, 0.5, 1.0]] * 5)
    mesh = o3d.io.read_triangle_mesh(str(write_mesh(tmp_path / "m.ply", v, tri, col)))
    assert np.allclose(np.asarray(mesh.vertices), v.numpy())
    assert (np.asarray(mesh.triangles) == tri.numpy()).all()
    assert np.allclose(np.asarray(mesh.vertex_colors), col.numpy(), atol=1 / 255)  # 8-bit colours


def test_predict_writes_meshes_landmarks_and_pictures(tmp_path):
    method = Deep3DFace(MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=40)
    dm = SyntheticFaces(MODEL, image_size=40, batch_size=2, num_predict=3)
    writer = ReconstructionWriter(str(tmp_path / "pred"))
    trainer = Trainer(logger=False, callbacks=[writer], enable_progress_bar=False, accelerator="cpu")
    trainer.predict(method, dm, return_predictions=False)
    out = tmp_path / "pred"
    names = sorted(p.stem for p in out.glob("*.obj"))
    assert names == ["000000", "000001", "000002"]
    v, c, f = read_obj(out / "000001.obj")
    model = method.morphable
    assert v.shape == (model.n_vertices, 3) and f.shape == (model.n_triangles, 3)
    assert np.isfinite(v).all() and (0 <= c).all() and (c <= 1).all() and f.max() < len(v)
    lm = np.loadtxt(out / "000001_lm68.txt")
    assert lm.shape == (68, 2) and np.loadtxt(out / "000001_lm68_3d.txt").shape == (68, 3)
    img = np.asarray(Image.open(out / "000002.png"))
    assert img.shape == (40, 120, 3) and img.std() > 0


def test_predict_on_image_sets_writes_one_file_set_per_view(tmp_path):
    method = Deep3DFace(MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=32)
    dm = SyntheticFaces(MODEL, image_size=32, batch_size=2, num_predict=2, set_size=3, set_mode="multiview")
    writer = ReconstructionWriter(str(tmp_path / "pred"))
    trainer = Trainer(logger=False, callbacks=[writer], enable_progress_bar=False, accelerator="cpu")
    recs = trainer.predict(method, dm)
    out = tmp_path / "pred"
    assert sorted(p.stem for p in out.glob("*.obj")) == [f"00000{i}_{j}" for i in range(2) for j in range(3)]
    rec = recs[0]
    assert rec.views == 3 and len(rec) == 6
    lm = np.loadtxt(out / "000001_2_lm68.txt")  # sample 1, view 2: row 1*3 + 2
    assert np.allclose(lm, rec.landmarks2d[5].numpy(), atol=1e-4)
    assert np.asarray(Image.open(out / "000001_2.png")).shape == (32, 96, 3)


def test_panels_and_preview_grid(tmp_path):
    method = Deep3DFace(MODEL, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=40)
    dm = SyntheticFaces(MODEL, image_size=40, batch_size=2, num_train=2, num_val=2)
    batch = next(iter(dm.val_dataloader()))
    rec = method.reconstruct(batch, render=True)
    pic = panels(method, rec, batch["image"], batch["landmarks68"])
    assert pic.shape == (2, 3, 40, 120)
    assert torch.equal(pic[..., :40], batch["image"])  # input panel untouched
    assert pic[..., 80:].amax() > 0.2  # the shaded mesh is visible
    preview = PreviewGrid(max_images=2)
    trainer = Trainer(
        max_steps=1, logger=False, callbacks=[preview], enable_progress_bar=False, enable_checkpointing=False,
        num_sanity_val_steps=0, limit_val_batches=1, default_root_dir=str(tmp_path), accelerator="cpu",
    )  # fmt: skip
    trainer.fit(method, dm)
    assert preview.last_path is not None and preview.last_path.is_file()
    assert np.asarray(Image.open(preview.last_path)).shape == (80, 120, 3)

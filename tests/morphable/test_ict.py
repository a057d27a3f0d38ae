"""ICT-FaceKit: the upstream OBJ folder layout (fixture) and the derived npz; cm -> mm, quads, landmarks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facezoo.morphable.ict import load_ict, read_obj, triangulate


def write_obj(path: Path, v: np.ndarray, polys=()) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in p) for p in polys]
    path.write_text("# test\n" + "\n".join(lines) + "\n")


def ict_folder(folder: Path, n_region: int = 20, extra: int = 4) -> dict:
    """A FaceXModel-like folder: a 4x5 quad grid (the region) + 4 'eye' vertices with a triangle after it."""
    rng = np.random.default_rng(0)
    ys, xs = np.meshgrid(np.linspace(-8, 8, 4), np.linspace(-7, 7, 5), indexing="ij")
    region = np.stack([xs, ys, 10 - 0.05 * (xs**2 + ys**2)], -1).reshape(-1, 3)
    neutral = np.concatenate([region, rng.standard_normal((extra, 3))])
    quads = [
        [r * 5 + c, r * 5 + c + 1, (r + 1) * 5 + c + 1, (r + 1) * 5 + c] for r in range(3) for c in range(4)
    ]
    polys = quads + [[20, 21, 22]]
    write_obj(folder / "generic_neutral_mesh.obj", neutral, polys)
    ids = rng.standard_normal((3, len(neutral), 3)) * 0.1
    exps = rng.standard_normal((2, len(neutral), 3)) * 0.1
    for i, d in enumerate(ids):
        write_obj(folder / f"identity{i:03d}.obj", neutral + d, polys)
    names = ["jawOpen", "mouthSmile_L"]
    for name, d in zip(names, exps):
        write_obj(folder / f"{name}.obj", neutral + d, polys)
    lm = rng.integers(0, n_region, 68).tolist()
    (folder / "vertex_indices.json").write_text(
        json.dumps({"expressions": names, "idx_to_landmark_verts": lm, "idx_to_fitting_verts": [0, 1, 2, 23]})
    )
    return dict(neutral=neutral, ids=ids, exps=exps, quads=quads, lm=lm)


def test_obj_folder(tmp_path):
    ref = ict_folder(tmp_path)
    model = load_ict(tmp_path, region=20)
    assert (model.n_vertices, model.n_id, model.n_exp, model.n_triangles) == (20, 3, 2, 24)
    assert model.bases_scaled and model.units == "mm"
    a, b = torch.randn(2, 3), torch.randn(2, 2)
    expect = 10.0 * (
        ref["neutral"][:20]
        + np.einsum("kvc,bk->bvc", ref["ids"][:, :20], a.double().numpy())
        + np.einsum("kvc,bk->bvc", ref["exps"][:, :20], b.double().numpy())
    )
    np.testing.assert_allclose(model(a, b).double().numpy(), expect, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(model.landmarks68.numpy(), ref["lm"])
    assert model.mask("fitting").sum() == 3  # index 23 is outside the region
    tri = model.triangles.numpy()
    q = ref["quads"][0]
    assert [q[0], q[1], q[2]] in tri.tolist() and [q[0], q[2], q[3]] in tri.tolist()  # CCW kept (faces +z)
    full = load_ict(tmp_path, region=None)
    assert full.n_vertices == 24 and full.n_triangles == 25


def test_triangulate_and_obj_reader(tmp_path):
    quads = np.array([[0, 1, 2, 3], [4, 5, 6, -1]])
    np.testing.assert_array_equal(triangulate(quads), [[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(triangulate([[0, 1, 2, 3], [4, 5, 6]]), [[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf -3/1 -2/1 -1/1\n")
    v, polys = read_obj(tmp_path / "m.obj")
    assert v.shape == (3, 3) and polys == [[0, 1, 2]]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="ICT-FaceKit: neither generic_neutral_mesh.obj"):
        load_ict(tmp_path, region=20)
    ict_folder(tmp_path)
    (tmp_path / "jawOpen.obj").unlink()
    with pytest.raises(FileNotFoundError, match="'jawOpen' listed in vertex_indices.json is missing"):
        load_ict(tmp_path, region=20)
    (tmp_path / "vertex_indices.json").unlink()
    with pytest.raises(FileNotFoundError, match="vertex_indices.json: not found"):
        load_ict(tmp_path, region=20)


def test_real_npz(shared_data):
    d = shared_data / "ict_facekit"
    model = load_ict(d)
    z = np.load(d / "ict_face_light_face_head_region.npz")
    assert (model.n_vertices, model.n_id, model.n_exp) == (11248, 100, 53)
    assert model.n_triangles == 2 * 11144  # all quads
    np.testing.assert_allclose(model.mean.numpy(), z["neutral"] * 10.0, rtol=1e-6)
    a = torch.zeros(1, 100)
    a[0, 3] = 1.0
    np.testing.assert_allclose(
        model(a, None)[0].numpy(), (z["neutral"] + z["identity_deltas"][3]) * 10, atol=1e-4
    )
    lm = model.landmarks(model.mean)
    # Multi-PIE order = iBUG order: contour 0..16 from the subject's right (-x) to left, chin 8, nose tip 30.
    assert lm[0, 0] < lm[8, 0] < lm[16, 0] and lm[8, 1] == lm[:17, 1].min()
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0]
    assert lm[30, 2] > model.mean[:, 2].max() - 1.0 and lm[8, 1] < lm[33, 1] < lm[27, 1]
    v, t = model.mean.double(), model.triangles
    n = torch.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]], dim=1)
    face = model.mask("fitting")[t].all(1)
    assert n[face].sum(0)[2] > 0.9 * n[face].sum(0).norm()  # face region CCW from the front


@pytest.mark.slow
def test_real_obj_layout_matches_npz(shared_data, tmp_path):
    """The real generic_neutral_mesh.obj + identity/expression OBJs made from the npz deltas load to the same
    model as the npz: region, quad split and landmarks agree."""
    d = shared_data / "ict_facekit"
    z = np.load(d / "ict_face_light_face_head_region.npz")
    (tmp_path / "generic_neutral_mesh.obj").symlink_to(d / "generic_neutral_mesh.obj")
    neutral, _ = read_obj(d / "generic_neutral_mesh.obj", faces=False)
    info = json.loads((d / "vertex_indices.json").read_text())
    names = list(z["expression_names"][:1])
    for fname, delta in (
        (f"identity{0:03d}.obj", z["identity_deltas"][0]),
        (f"{names[0]}.obj", z["expression_deltas"][0]),
    ):
        full = neutral.copy()
        full[:11248] += delta
        write_obj(tmp_path / fname, full)
    info["expressions"] = names
    (tmp_path / "vertex_indices.json").write_text(json.dumps(info))
    from_obj = load_ict(tmp_path)
    from_npz = load_ict(d)
    assert from_obj.n_triangles == from_npz.n_triangles
    assert torch.equal(from_obj.triangles, from_npz.triangles)
    torch.testing.assert_close(from_obj.mean, from_npz.mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(from_obj.id_basis[..., 0], from_npz.id_basis[..., 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(from_obj.exp_basis[..., 0], from_npz.exp_basis[..., 0], atol=1e-4, rtol=0)

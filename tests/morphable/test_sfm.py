"""Surrey Face Model: a cereal writer for fixtures (checked byte-exact against the real file), the loader's
mapping, landmarks with validity flags, and the real files when present."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from facezoo.morphable.sfm import (
    BFM_NOSE_TIP_MM,
    load_sfm,
    read_ibug_to_sfm,
    read_sfm_blendshapes,
    read_sfm_shape,
)


def _matrix(a: np.ndarray, dtype: str = "<f4") -> bytes:
    a = np.atleast_2d(np.asarray(a).T).T if np.ndim(a) == 1 else np.asarray(a)
    return struct.pack("<ii", *a.shape) + np.asarray(a, dtype).T.tobytes()  # column-major data


def _pca(mean, basis, ev, tri) -> bytes:
    return (
        _matrix(np.asarray(mean).reshape(-1, 1))
        + _matrix(basis)
        + _matrix(np.asarray(ev).reshape(-1, 1))
        + struct.pack("<Q", len(tri))
        + np.asarray(tri, "<i4").tobytes()
    )


def write_sfm_shape(path: Path, mean, basis, ev, tri, tc, color=None) -> None:
    """eos MorphableModel v1 in cereal portable binary (shape PCA, colour PCA, texture coordinates)."""
    empty = (np.zeros((0, 1)), np.zeros((0, 0)), np.zeros((0, 1)), np.zeros((0, 3)))
    body = struct.pack("<I", 1) + _pca(mean, basis, ev, tri) + _pca(*(color or empty))
    path.write_bytes(body + struct.pack("<Q", len(tc)) + np.asarray(tc, "<f8").tobytes())


def write_blendshapes(path: Path, shapes: list[tuple[str, np.ndarray]]) -> None:
    out = struct.pack("<Q", len(shapes))
    for name, d in shapes:
        out += struct.pack("<Q", len(name)) + name.encode() + _matrix(np.asarray(d).reshape(-1, 1))
    path.write_bytes(out)


def tiny_sfm(folder: Path, color: bool = False) -> dict:
    rng = np.random.default_rng(0)
    n = 8
    ys, xs = np.meshgrid(np.linspace(-80, 80, n), np.linspace(-70, 70, n), indexing="ij")
    mean = np.stack([xs, ys, -np.hypot(xs, ys) * 0.3], -1).reshape(-1, 3)
    V = mean.shape[0]
    tri = [[r * n + c, r * n + c + 1, (r + 1) * n + c + 1] for r in range(n - 1) for c in range(n - 1)]
    basis = np.linalg.qr(rng.standard_normal((3 * V, 5)))[0]
    ev = np.array([50.0, 20.0, 9.0, 4.0, 1.0])
    tc = rng.random((V, 2))
    col = None
    if color:
        col = (
            rng.random(3 * V),
            np.linalg.qr(rng.standard_normal((3 * V, 2)))[0],
            np.array([0.1, 0.05]),
            tri,
        )
    write_sfm_shape(folder / "sfm_shape_64.bin", mean.reshape(-1), basis, ev, tri, tc, col)
    shapes = [("smile", rng.standard_normal(3 * V)), ("frown", rng.standard_normal(3 * V))]
    write_blendshapes(folder / "expression_blendshapes_64.bin", shapes)
    mapping = {k: int(rng.integers(0, V)) for k in range(18, 69) if k not in (61, 65)} | {9: 3, 31: 27}
    lines = ["# test mapping", "[landmark_mappings]"] + [
        f"{k:2d} = {v:5d}  # point" for k, v in mapping.items()
    ]
    lines += ["", "[contour_landmarks]", "right = [ 1,", " 2 ]"]
    (folder / "ibug_to_sfm.txt").write_text("\n".join(lines) + "\n")
    return dict(
        mean=mean, basis=basis, ev=ev, tri=np.array(tri), tc=tc, shapes=shapes, mapping=mapping, col=col
    )


def test_fixture_round_trip_and_mapping(tmp_path):
    ref = tiny_sfm(tmp_path)
    s = read_sfm_shape(tmp_path / "sfm_shape_64.bin")
    np.testing.assert_allclose(s["basis"], ref["basis"], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(s["triangles"], ref["tri"])
    assert read_ibug_to_sfm(tmp_path / "ibug_to_sfm.txt") == ref["mapping"]
    model = load_sfm(tmp_path, align_to_bfm=False)
    V = 64
    a, b = torch.randn(2, 5), torch.randn(2, 2)
    bs = np.stack([d.reshape(V, 3) for _, d in ref["shapes"]], -1)
    expect = (
        ref["mean"]
        + np.einsum("vk,bk->bv", ref["basis"], a.double().numpy() * np.sqrt(ref["ev"])).reshape(2, V, 3)
        + np.einsum("vck,bk->bvc", bs, b.double().numpy())
    )
    np.testing.assert_allclose(model(a, b).double().numpy(), expect, rtol=1e-4, atol=1e-3)
    valid = model.landmark_valid.numpy()
    assert valid.sum() == len(ref["mapping"]) == 50
    assert not valid[:8].any() and not valid[9:17].any() and valid[8] and not valid[60] and not valid[64]
    assert model.landmarks68[60] == ref["mapping"][49]  # inner mouth corner stand-in = outer corner
    assert model.landmarks68[0] == ref["mapping"][9]  # no contours json: chin stand-in
    np.testing.assert_allclose(
        model.uv.numpy(), np.stack([ref["tc"][:, 0], 1 - ref["tc"][:, 1]], 1), atol=1e-6
    )
    assert model.n_tex == 0 and "smile, frown" in model.source


def test_alignment_and_colour_model(tmp_path):
    ref = tiny_sfm(tmp_path, color=True)
    model = load_sfm(tmp_path)
    nose = model.mean[model.landmarks68[30]].double().numpy()
    np.testing.assert_allclose(nose[1:], BFM_NOSE_TIP_MM[1:], atol=1e-4)
    assert abs(nose[0] - ref["mean"][27, 0]) < 1e-4  # x untouched
    assert model.n_tex == 2
    torch.testing.assert_close(
        model.tex_std.double(), torch.sqrt(torch.tensor([0.1, 0.05], dtype=torch.float64))
    )


def test_errors(tmp_path):
    tiny_sfm(tmp_path)
    p = tmp_path / "sfm_shape_64.bin"
    data = p.read_bytes()
    p.write_bytes(data[:-20])
    with pytest.raises(ValueError, match="truncated or not an eos cereal file"):
        read_sfm_shape(p)
    p.write_bytes(struct.pack("<I", 7) + data[4:])
    with pytest.raises(ValueError, match="class version 7"):
        read_sfm_shape(p)
    p.write_bytes(data + b"xx")
    with pytest.raises(ValueError, match="trailing bytes"):
        read_sfm_shape(p)
    p.unlink()
    with pytest.raises(FileNotFoundError, match="sfm_shape_3448.bin: not found .*eos"):
        load_sfm(tmp_path)


def test_real_sfm_files(shared_data, tmp_path):
    d = shared_data / "sfm"
    s = read_sfm_shape(d / "sfm_shape_3448.bin")
    assert s["basis"].shape == (10344, 63) and s["triangles"].shape == (6736, 3) and s["color_mean"].size == 0
    np.testing.assert_allclose(s["basis"].T @ s["basis"], np.eye(63), atol=1e-4)  # orthonormal
    # Our writer reproduces the real file byte for byte: the layout (order, widths, column-major) is right.
    write_sfm_shape(
        tmp_path / "copy.bin", s["mean"], s["basis"], s["eigenvalues"], s["triangles"], s["texcoords"]
    )
    assert (tmp_path / "copy.bin").read_bytes() == (d / "sfm_shape_3448.bin").read_bytes()
    bs = read_sfm_blendshapes(d / "expression_blendshapes_3448.bin")
    assert [n for n, _ in bs] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    write_blendshapes(tmp_path / "bs.bin", bs)
    assert (tmp_path / "bs.bin").read_bytes() == (d / "expression_blendshapes_3448.bin").read_bytes()

    model = load_sfm(d)
    assert (model.n_vertices, model.n_id, model.n_exp) == (3448, 63, 6)
    assert int(model.landmark_valid.sum()) == 50
    v, t = model.mean.double(), model.triangles
    n = torch.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]], dim=1)
    assert n.sum(0)[2] > 0.9 * n.sum(0).norm()  # CCW from the front
    lm = model.landmarks(model.mean)
    assert lm[36, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0] and lm[8, 1] < lm[33, 1] < lm[27, 1]
    assert lm[30, 2] > v[:, 2].max() - 3.0  # nose tip is frontmost
    assert lm[0, 0] < lm[36, 0] and lm[16, 0] > lm[45, 0]  # contour stand-ins outside the eyes
    uv = model.uv.numpy()
    assert np.corrcoef(uv[:, 1], v[:, 1].numpy())[0, 1] > 0.95  # v up

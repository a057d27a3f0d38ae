"""The procedural morphable model: contract, determinism, bases, landmarks semantics, texture, masks, UVs."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from facezoo.morphable.procedural import procedural_arrays, procedural_model
from facezoo.morphable.procedural_bases import EXP_NAMES

KW = dict(n_vertices=2000, n_id=30, n_exp=30, n_tex=20)
# iBUG-68 left/right pairs (subject's right first).
PAIRS = (
    [(k, 16 - k) for k in range(8)]
    + [(17 + k, 26 - k) for k in range(5)]
    + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
)
MIDLINE = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


@pytest.fixture(scope="module")
def arrays():
    return procedural_arrays(**KW)


def _flat(basis: np.ndarray) -> np.ndarray:
    return basis.reshape(-1, basis.shape[-1]).astype(np.float64)


def _laplacian(tri: np.ndarray, n: int) -> torch.Tensor:
    """Uniform graph Laplacian (I - D^-1 A) from the triangle edges, dense (small meshes only)."""
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    a = torch.zeros(n, n, dtype=torch.float64)
    a[e[:, 0], e[:, 1]] = 1.0
    a[e[:, 1], e[:, 0]] = 1.0
    return torch.eye(n, dtype=torch.float64) - a / a.sum(1, keepdim=True)


def _vertex_normals(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
    f = v[tri]
    fn = np.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tri[:, k], fn)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_keys_match_the_model_constructor(arrays):
    from facezoo.morphable.model import MorphableModel

    params = inspect.signature(MorphableModel).parameters
    assert set(arrays) <= set(params)
    frozen = {"mean", "id_basis", "exp_basis", "triangles", "landmarks68", "id_std", "exp_std", "tex_mean"}
    frozen |= {"tex_basis", "tex_std", "uv", "masks", "bases_scaled", "name", "units"}
    assert set(arrays) == frozen


def test_shapes_and_dtypes(arrays):
    v = arrays["mean"].shape[0]
    assert abs(v - KW["n_vertices"]) / KW["n_vertices"] < 0.05
    assert arrays["mean"].shape == (v, 3) and arrays["mean"].dtype == np.float32
    assert arrays["id_basis"].shape == (v, 3, 30) and arrays["id_basis"].dtype == np.float32
    assert arrays["exp_basis"].shape == (v, 3, 30) and arrays["exp_basis"].dtype == np.float32
    assert arrays["tex_basis"].shape == (v, 3, 20) and arrays["tex_mean"].shape == (v, 3)
    assert (
        arrays["id_std"].shape == (30,)
        and arrays["exp_std"].shape == (30,)
        and arrays["tex_std"].shape == (20,)
    )
    assert arrays["triangles"].dtype == np.int64 and arrays["triangles"].shape[1] == 3
    assert arrays["triangles"].min() == 0 and arrays["triangles"].max() == v - 1
    assert arrays["landmarks68"].dtype == np.int64 and arrays["landmarks68"].shape == (68,)
    assert arrays["uv"].shape == (v, 2)
    for m in arrays["masks"].values():
        assert m.dtype == bool and m.shape == (v,)
    assert arrays["bases_scaled"] is False and arrays["units"] == "mm"
    for k in ("id_std", "exp_std", "tex_std"):
        assert (arrays[k] > 0).all()


@pytest.mark.parametrize("n", [800, 3000, 6000])
def test_resolution_tracks_n_vertices(n):
    a = procedural_arrays(n, n_id=5, n_exp=5, n_tex=5)
    assert abs(a["mean"].shape[0] - n) / n < 0.05
    assert len(set(a["landmarks68"].tolist())) == 68


def test_deterministic_and_seeded(arrays):
    again = procedural_arrays(**KW)
    for k in ("mean", "id_basis", "exp_basis", "tex_basis", "id_std", "landmarks68", "triangles"):
        np.testing.assert_array_equal(again[k], arrays[k])
    other = procedural_arrays(**KW, seed=1)
    np.testing.assert_array_equal(other["mean"], arrays["mean"])  # the template does not depend on the seed
    assert not np.allclose(other["id_basis"], arrays["id_basis"], atol=1e-3)
    assert not np.allclose(other["tex_basis"], arrays["tex_basis"], atol=1e-3)
    # The named expressions come first and are seed-independent; the random ones differ.
    np.testing.assert_allclose(other["exp_basis"][..., :20], arrays["exp_basis"][..., :20], atol=1e-5)
    assert not np.allclose(other["exp_basis"][..., 20:], arrays["exp_basis"][..., 20:], atol=1e-3)


def test_cached_results_are_copies(arrays):
    a = procedural_arrays(**KW)
    a["mean"][:] = 0.0
    a["masks"]["skin"][:] = False
    b = procedural_arrays(**KW)
    np.testing.assert_array_equal(b["mean"], arrays["mean"])
    assert b["masks"]["skin"].any()


@pytest.mark.parametrize("key", ["id_basis", "exp_basis", "tex_basis"])
def test_bases_orthonormal(arrays, key):
    b = _flat(arrays[key])
    np.testing.assert_allclose(b.T @ b, np.eye(b.shape[1]), atol=1e-5)


def test_std_spectrum(arrays):
    v = arrays["mean"].shape[0]
    for k in ("id_std", "tex_std"):
        assert (np.diff(arrays[k]) <= 0).all()
    rms = arrays["id_std"] / np.sqrt(v)  # per-vertex RMS displacement (mm) of a 1-sigma component
    assert 2.0 < rms[0] < 8.0 and rms[-1] < 0.2 * rms[0]
    # Expression: jaw_open is the largest; the first few named ones are a few mm at the mouth/brows.
    e = arrays["exp_std"] / np.sqrt(v)
    assert e[0] == e.max() and 1.0 < e[0] < 8.0


def test_scale_invariant_stds():
    """The std of a component is the norm of its 1-sigma field, so the per-vertex RMS barely depends on V."""
    a = procedural_arrays(1500, n_id=3, n_exp=3, n_tex=3)
    b = procedural_arrays(6000, n_id=3, n_exp=3, n_tex=3)
    ra = a["id_std"] / np.sqrt(a["mean"].shape[0])
    rb = b["id_std"] / np.sqrt(b["mean"].shape[0])
    np.testing.assert_allclose(ra, rb, rtol=0.1)


def test_bases_are_smooth(arrays):
    """Laplacian energy ||L b||^2 / ||b||^2 of basis fields is far below that of white noise."""
    tri, n = arrays["triangles"], arrays["mean"].shape[0]
    lap = _laplacian(tri, n)
    noise = torch.randn(n, 3, dtype=torch.float64)
    e_noise = float((lap @ noise).pow(2).sum() / noise.pow(2).sum())

    def energy(b):
        b = torch.from_numpy(b.astype(np.float64))  # [V,3,K]
        return ((lap @ b.reshape(n, -1)).reshape(n, 3, -1).pow(2).sum((0, 1)) / b.pow(2).sum((0, 1))).numpy()

    assert energy(arrays["id_basis"][..., :10]).max() < 0.01 * e_noise
    # Texture: the leading (skin-wide) components are smooth; later ones hold sharp iris/brow/lip edges.
    assert energy(arrays["tex_basis"][..., :5]).max() < 0.02 * e_noise
    # Expressions are localised (and jaw_open is sharp across the lip seam), still far smoother than noise.
    assert energy(arrays["exp_basis"]).max() < 0.2 * e_noise


def test_landmark_semantics(arrays):
    lm = arrays["landmarks68"]
    p = arrays["mean"][lm].astype(np.float64)
    assert len(set(lm.tolist())) == 68
    assert np.argmax(p[:, 2]) == 30  # nose tip is the most protruding landmark
    for r, l in PAIRS:
        assert p[r, 0] < 0 < p[l, 0], (r, l)  # subject's right at -x
        np.testing.assert_allclose(p[r] * [-1, 1, 1], p[l], atol=1e-4)
    np.testing.assert_allclose(p[MIDLINE, 0], 0.0, atol=1e-4)
    eyes, nose, mouth, chin = p[36:48, 1].mean(), p[30, 1], p[48:68, 1].mean(), p[8, 1]
    assert eyes > nose > mouth > chin
    assert p[17:27, 1].min() > p[36:48, 1].max()  # brows above the eyes
    assert p[27, 1] > p[28, 1] > p[29, 1] > p[30, 1] > p[33, 1]  # down the nose
    assert p[8, 1] == p[:, 1].min()  # chin is the lowest
    assert (p[[37, 38], 1] > p[[41, 40], 1]).all()  # upper lids above lower lids
    assert (p[61:64, 1] > p[65:68, 1]).all()  # inner upper lip above inner lower lip
    assert 120.0 < p[16, 0] - p[0, 0] < 150.0  # face width at the ears
    assert 95.0 < p[27, 1] - p[8, 1] < 135.0  # nasion to menton
    assert (
        140.0 < np.ptp(arrays["mean"][arrays["masks"]["front"], 1]) < 170.0
    )  # chin to the top of the forehead


def test_landmarks_move_with_identity(arrays):
    lm = arrays["landmarks68"]
    d = arrays["id_basis"][lm] * arrays["id_std"]  # [68,3,K] 1-sigma landmark displacements
    assert np.linalg.norm(d[..., :5], axis=1).mean() > 1.0


def _exp_delta(arrays, name: str, sigma: float = 1.0) -> np.ndarray:
    k = EXP_NAMES.index(name)
    return sigma * arrays["exp_std"][k] * arrays["exp_basis"][arrays["landmarks68"], :, k]


def test_jaw_open_is_local(arrays):
    d = _exp_delta(arrays, "jaw_open")
    assert d[8, 1] < -5.0 and d[57, 1] < -4.0  # chin and lower lip go down
    assert np.abs(d[[19, 24]]).max() < 0.05 and np.abs(d[36:48]).max() < 0.05  # brows and eyes stay
    assert np.abs(d[62]).max() < 0.05  # upper inner lip stays
    p = arrays["mean"][arrays["landmarks68"]]
    assert np.linalg.norm((p[66] + d[66]) - p[62]) > np.linalg.norm(p[66] - p[62]) + 4.0  # the mouth opens


def test_other_named_expressions(arrays):
    smile = _exp_delta(arrays, "smile")
    assert smile[48, 1] > 1.0 and smile[54, 1] > 1.0 and smile[48, 0] < 0 < smile[54, 0]
    assert np.abs(smile[17:27]).max() < 0.3
    brow = _exp_delta(arrays, "brow_raise")
    assert brow[17:27, 1].min() > 1.0 and brow[18:26, 1].min() > 1.5 and np.abs(brow[48:68]).max() < 0.1
    close = _exp_delta(arrays, "eye_close")
    assert close[[37, 38, 43, 44], 1].max() < -1.5 and np.abs(close[48:68]).max() < 0.1


def test_outward_normals(arrays):
    v, tri = arrays["mean"].astype(np.float64), arrays["triangles"]
    front = arrays["masks"]["front"]
    n = _vertex_normals(v, tri)
    assert n[front, 2].mean() > 0.6 and (n[front, 2] > 0).mean() > 0.98
    f = v[tri]
    fn = np.cross(f[:, 1] - f[:, 0], f[:, 2] - f[:, 0])
    centre = f.mean(1) - v.mean(0)
    assert (np.einsum("ij,ij->i", fn, centre) > 0).mean() > 0.97  # away from the interior
    nose = n[arrays["landmarks68"][30]]
    assert nose[2] > 0.8


def test_texture(arrays):
    mean, basis, std = arrays["tex_mean"], arrays["tex_basis"], arrays["tex_std"]
    assert mean.min() >= 0.0 and mean.max() <= 1.0
    for k in range(5):
        for s in (-2.0, 2.0):
            t = mean + s * std[k] * basis[..., k]
            out = np.maximum(t - 1.0, 0.0) + np.maximum(-t, 0.0)
            assert (out > 0).mean() < 0.01 and out.max() < 0.1
    lm = arrays["landmarks68"]
    skin = mean[arrays["masks"]["skin"]].mean(0)
    lips = mean[lm[[50, 51, 52, 56, 57, 58]]].mean(0)
    brows = mean[lm[[19, 20, 23, 24]]].mean(0)
    assert lips.sum() < skin.sum() and lips[0] / lips[1] > skin[0] / skin[1]  # darker and redder
    assert brows.sum() < 0.7 * skin.sum()
    assert skin[0] > skin[1] > skin[2]  # a skin tone


def test_masks(arrays):
    front, skin = arrays["masks"]["front"], arrays["masks"]["skin"]
    lm = arrays["landmarks68"]
    assert (skin <= front).all() and 0.1 < front.mean() < 0.7
    assert front[lm[17:68]].all() and skin[lm[[28, 29, 30]]].all()
    assert not skin[lm[[37, 38, 43, 44, 51, 57, 62, 66]]].any()  # lids and lips are not skin
    assert not front[arrays["mean"][:, 2] < 0].any()


def test_uv(arrays):
    uv, tri = arrays["uv"].astype(np.float64), arrays["triangles"]
    assert uv.min() >= 0.0 and uv.max() <= 1.0
    t = uv[tri]
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    assert (area <= 0).mean() < 0.01  # CCW in uv too: u grows with +x, v with +y
    assert uv[arrays["landmarks68"][30], 0] == pytest.approx(0.5, abs=1e-6)


def test_procedural_model_matches_arrays(arrays):
    model = procedural_model(**KW)
    assert model.n_vertices == arrays["mean"].shape[0] and model.n_id == 30 and model.n_exp == 30
    g = torch.Generator().manual_seed(3)
    a, e = torch.randn(2, 30, generator=g), torch.randn(2, 30, generator=g)
    v = model(a, e)
    ref = arrays["mean"][None] + np.einsum("vck,bk->bvc", arrays["id_basis"], a.numpy() * arrays["id_std"])
    ref += np.einsum("vck,bk->bvc", arrays["exp_basis"], e.numpy() * arrays["exp_std"])
    np.testing.assert_allclose(v.numpy(), ref, atol=1e-3)
    lm = model.landmarks(v)
    np.testing.assert_allclose(lm.numpy(), v.numpy()[:, arrays["landmarks68"]], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "err"),
    [
        (dict(n_vertices=10), ValueError),
        (dict(n_vertices=2000.0), TypeError),
        (dict(n_id=0), ValueError),
        (dict(seed=-1), ValueError),
        (dict(n_exp=True), TypeError),
    ],
)
def test_argument_validation(kwargs, err):
    with pytest.raises(err, match=next(iter(kwargs))):
        procedural_arrays(**kwargs)


@pytest.mark.slow
def test_benchmark_size_builds():
    a = procedural_arrays(35000, n_id=80, n_exp=64, n_tex=80)
    v = a["mean"].shape[0]
    assert abs(v - 35000) / 35000 < 0.03
    b = _flat(a["id_basis"][..., :20])
    np.testing.assert_allclose(b.T @ b, np.eye(20), atol=1e-5)
    assert len(set(a["landmarks68"].tolist())) == 68

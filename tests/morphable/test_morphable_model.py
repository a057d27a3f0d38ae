"""MorphableModel: construction checks, forward against a brute-force sum, gradients, devices and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facezoo.morphable import MorphableModel


def tiny(V: int = 6, kid: int = 4, kexp: int = 3, ktex: int = 2, scaled: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        mean=torch.randn(V, 3, generator=g),
        id_basis=torch.randn(V, 3, kid, generator=g),
        exp_basis=torch.randn(V, 3, kexp, generator=g),
        triangles=torch.tensor([[i, (i + 1) % V, (i + 2) % V] for i in range(V)]),
        landmarks68=torch.randint(0, V, (68,), generator=g),
        id_std=torch.rand(kid, generator=g) + 0.5,
        exp_std=torch.rand(kexp, generator=g) + 0.5,
        tex_mean=torch.rand(V, 3, generator=g),
        tex_basis=torch.randn(V, 3, ktex, generator=g) * 0.1,
        tex_std=torch.rand(ktex, generator=g) + 0.5,
        uv=torch.rand(V, 2, generator=g),
        masks={"skin": torch.arange(V) % 2 == 0, "front": torch.ones(V, dtype=torch.bool)},
        bases_scaled=scaled,
        name="tiny",
    )


def brute(model: MorphableModel, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = []
    for i in range(a.shape[0]):
        v = model.mean.clone()
        for k in range(model.n_id):
            s = 1.0 if model.bases_scaled else model.id_std[k]
            v = v + model.id_basis[:, :, k] * a[i, k] * s
        for k in range(model.n_exp):
            s = 1.0 if model.bases_scaled else model.exp_std[k]
            v = v + model.exp_basis[:, :, k] * b[i, k] * s
        out.append(v)
    return torch.stack(out)


@pytest.mark.parametrize("scaled", [False, True])
def test_forward_matches_brute_force(scaled):
    model = MorphableModel(**tiny(scaled=scaled))
    a, b = torch.randn(5, 4), torch.randn(5, 3)
    torch.testing.assert_close(model(a, b), brute(model, a, b), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(a, None), brute(model, a, torch.zeros(5, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(None, b), brute(model, torch.zeros(5, 4), b), rtol=1e-5, atol=1e-5)
    assert model().shape == (1, 6, 3)
    torch.testing.assert_close(model()[0], model.mean)


def test_texture_and_landmarks_and_masks():
    kw = tiny()
    model = MorphableModel(**kw)
    t = torch.randn(3, 2)
    expect = kw["tex_mean"] + torch.einsum("vck,bk->bvc", kw["tex_basis"], t * kw["tex_std"])
    torch.testing.assert_close(model.texture(t), expect, rtol=1e-5, atol=1e-6)
    v = model(torch.randn(2, 4), torch.randn(2, 3))
    lm = model.landmarks(v)
    assert lm.shape == (2, 68, 3)
    torch.testing.assert_close(lm[1, 7], v[1, kw["landmarks68"][7]])
    assert model.landmarks(v[0]).shape == (68, 3)
    assert torch.equal(model.mask("skin"), kw["masks"]["skin"])
    with pytest.raises(KeyError, match="skin"):
        model.mask("nose")
    assert (model.n_vertices, model.n_id, model.n_exp, model.n_tex) == (6, 4, 3, 2)


def test_numpy_inputs_and_storage_layout():
    kw = {
        k: (v.numpy().astype(np.float64) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
        for k, v in tiny().items()
    }
    kw["triangles"] = kw["triangles"].numpy().astype(np.int32)
    model = MorphableModel(**kw)
    assert model.mean.dtype == torch.float32 and model.id_basis.is_contiguous()
    assert model.triangles.dtype == torch.int64 and model.landmarks68.dtype == torch.int64


def test_gradcheck_float64():
    model = MorphableModel(**tiny(V=4, kid=3, kexp=2)).to(torch.float64)
    assert model.triangles.dtype == torch.int64 and model.mean.dtype == torch.float64
    a = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: model(x, y), (a, b))
    t = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model.texture, (t,))


def test_state_dict_round_trip():
    model = MorphableModel(**tiny())
    other = MorphableModel(**tiny(seed=1))
    other.load_state_dict(model.state_dict())
    a, b = torch.randn(2, 4), torch.randn(2, 3)
    torch.testing.assert_close(other(a, b), model(a, b))


def test_missing_bases_and_repr_info():
    kw = tiny()
    kw.update(
        id_basis=None, exp_basis=None, id_std=None, exp_std=None, tex_mean=None, tex_basis=None, tex_std=None
    )
    model = MorphableModel(**kw)
    assert model.n_id == 0 and model.n_exp == 0 and not model.has_texture
    torch.testing.assert_close(model(torch.zeros(2, 0), torch.zeros(2, 0)), model.mean.expand(2, -1, -1))
    info = model.info()
    assert (
        info["vertices"] == 6 and info["triangles"] == 6 and info["units"] == "mm" and info["name"] == "tiny"
    )
    assert "vertices=6" in repr(model)
    with pytest.raises(ValueError, match="no texture"):
        model.texture(None)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"mean": torch.zeros(6, 2)}, r"mean: expected shape \[V,3\]"),
        ({"id_basis": torch.zeros(5, 3, 4)}, r"id_basis: expected shape \[V=6"),
        ({"exp_basis": torch.zeros(6, 3)}, "exp_basis"),
        ({"id_std": torch.tensor([1.0, 0.0, 1.0, 1.0])}, "id_std: standard deviations must be positive"),
        ({"id_std": torch.ones(3)}, r"id_std: expected shape \[4\]"),
        ({"landmarks68": torch.zeros(67, dtype=torch.long)}, r"landmarks68: expected shape \[68\]"),
        ({"landmarks68": torch.full((68,), 6)}, r"landmarks68: vertex indices must lie in \[0, 5\]"),
        ({"triangles": torch.tensor([[0, 1, 9]])}, "triangles: vertex indices"),
        ({"triangles": torch.zeros(2, 3)}, "triangles: expected an integer array"),
        ({"masks": {"skin": torch.ones(6)}}, r"masks\['skin'\]: expected a bool"),
        ({"masks": {"skin": torch.ones(5, dtype=torch.bool)}}, r"masks\['skin'\]"),
        ({"uv": torch.zeros(6, 3)}, "uv: expected shape"),
        ({"tex_mean": None}, "without tex_mean"),
        ({"mean": torch.full((6, 3), float("nan"))}, "mean: contains NaN"),
    ],
)
def test_constructor_errors(change, match):
    kw = tiny()
    kw.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        MorphableModel(**kw)


def test_forward_errors():
    model = MorphableModel(**tiny())
    with pytest.raises(ValueError, match=r"id: expected shape \[B,4\]"):
        model(torch.zeros(2, 5), None)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(torch.zeros(2, 4), torch.zeros(3, 3))
    with pytest.raises(TypeError, match="torch tensor"):
        model(np.zeros((2, 4)), None)
    with pytest.raises(ValueError, match="vertices: expected shape"):
        model.landmarks(torch.zeros(2, 5, 3))


def test_meta_device_and_to():
    model = MorphableModel(**tiny()).to("meta")
    out = model(torch.zeros(2, 4, device="meta"), torch.zeros(2, 3, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 6, 3)

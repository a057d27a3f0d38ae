"""Photometric refinement on a synthetic rendered face with known albedo and light."""

from __future__ import annotations

import pytest
import torch

from facezoo.fitting import fit_landmarks, refine_photometric
from facezoo.geometry import WeakPerspective, euler_to_matrix
from facezoo.methods.base import build_morphable
from facezoo.render import MeshRenderer


@pytest.mark.parametrize("n_points", [68, 5])
def test_photometric_refinement_fits_albedo_and_light(n_points):
    model = build_morphable("procedural:1000:6:3:6")
    g = torch.Generator().manual_seed(0)
    tex = torch.randn(1, 6, generator=g) * 1.5
    light = torch.zeros(1, 27)
    light[0, ::9] = torch.tensor([0.9, 0.7, 0.6])  # coloured ambient
    light[0, 1::9] = 0.2
    rot = euler_to_matrix(torch.tensor([[0.05, 0.2, 0.0]]))
    cam = WeakPerspective(torch.tensor([0.45]), rot, torch.tensor([[48.0, 52.0]]))
    verts = model(torch.zeros(1, 6), None)
    photo = MeshRenderer(96)(
        verts, model.triangles, cam, colors=model.texture(tex), lighting=light, background=0.2
    )
    lm = cam.project(model.landmarks(verts)).double()
    if n_points == 5:
        from facezoo.data.landmarks import landmarks68_to_5

        lm = torch.as_tensor(landmarks68_to_5(lm.numpy()))
    fit = fit_landmarks(model.double(), lm, contour="fixed")
    ph = refine_photometric(model, [photo.image[0]], fit, lm, steps=40, crop_size=64, backend="builtin")
    first, last = ph.losses
    assert last < 0.6 * first
    true_albedo = model.texture(tex)[0].double()
    mean_err = (model.texture(None)[0].double() - true_albedo).abs().mean()
    fit_err = (ph.colours[0] - true_albedo).abs().mean()
    if n_points == 68:  # (five points leave the shape loose enough that the albedo also absorbs shape error)
        assert float(fit_err) < float(mean_err)  # the albedo moved towards the truth
        assert float((ph.landmarks2d - lm).norm(dim=-1).mean()) < 1.5  # and the landmarks stayed put (px)


def test_needs_an_albedo_model():
    from facezoo.morphable import MorphableModel

    m = build_morphable("procedural:600:4:2:4")
    bare = MorphableModel(mean=m.mean, id_basis=m.id_basis, exp_basis=None, triangles=m.triangles,
                          landmarks68=m.landmarks68)  # fmt: skip
    lm = torch.rand(1, 68, 2, dtype=torch.float64) * 50
    fit = fit_landmarks(bare.double(), lm, contour="fixed", iterations=2)
    with pytest.raises(ValueError, match="albedo"):
        refine_photometric(bare, [torch.rand(3, 64, 64)], fit, lm)

"""MMFace's geometry-weighted coefficient losses (Eqs. 5-6) and the volumetric BCE (Eq. 3) against
independent computations: the morphable model's own meshes, and BCE written out from its formula."""

import math

import torch

from facezoo.losses import basis_gram, basis_weighted_l2, volumetric_bce
from facezoo.methods.base import build_morphable


def test_identity_loss_equals_the_vertex_space_error_of_the_identity_difference():
    """E_id = ||S(α, β̂) - S(α̂, β̂)||² (per-vertex mean, in µm²) through the Gram matrix, for a model whose
    bases are stored unscaled (coefficients in std units)."""
    model = build_morphable("procedural:600")
    g = torch.Generator().manual_seed(0)
    a, a_hat = torch.randn(3, model.n_id, generator=g), torch.randn(3, model.n_id, generator=g)
    b_hat = torch.randn(3, model.n_exp, generator=g)
    gram = basis_gram(model.id_basis, None if model.bases_scaled else model.id_std, unit=1e-3)
    got = basis_weighted_l2(a, a_hat, gram.float())
    diff = (model(a, b_hat).double() - model(a_hat, b_hat).double()) * 1e3  # mm -> µm
    want = (diff**2).sum(-1).mean(-1).mean()
    torch.testing.assert_close(got.double(), want, rtol=2e-4, atol=0.0)
    # and it is not the plain parameter distance (Eq. 4)
    assert abs(float(got) - float(((a - a_hat) ** 2).sum(-1).mean())) > 1e3


def test_expression_loss_and_valid_rows():
    model = build_morphable("procedural:600")
    g = torch.Generator().manual_seed(1)
    b, b_hat = torch.randn(2, model.n_exp, generator=g), torch.zeros(2, model.n_exp)
    gram = basis_gram(model.exp_basis, model.exp_std)
    diff = model(None, b) - model(None, b_hat)
    per_row = (diff.double() ** 2).sum(-1).mean(-1)
    got = basis_weighted_l2(b, b_hat, gram.float(), valid=torch.tensor([False, True]))
    torch.testing.assert_close(got.double(), per_row[1], rtol=2e-4, atol=0.0)


def test_volumetric_bce_is_eq3_per_voxel():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    target = (torch.rand(2, 4, 3, 3, generator=g) > 0.5).double()
    p = 1.0 / (1.0 + torch.exp(-logits))
    want = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()
    torch.testing.assert_close(volumetric_bce(logits, target), want)
    only_second = -(target[1] * torch.log(p[1]) + (1 - target[1]) * torch.log(1 - p[1])).mean()
    torch.testing.assert_close(volumetric_bce(logits, target, torch.tensor([False, True])), only_second)
    assert math.isfinite(float(volumetric_bce(torch.full((1, 2), 200.0), torch.zeros(1, 2))))

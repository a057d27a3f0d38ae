"""SIR's loss terms against independent expectations: torch.distributions log-densities (Eqs. 11-12, 21), hand
computations (CosFace, Eqs. 19-20), brute-force loops (Eq. 16), and the centre update across 2 gloo
processes."""

import math

import pytest
import torch
from torch.distributions import Laplace, Normal, kl_divergence

from facezoo.losses import (
    CentreBank,
    batch_kl_standard_normal,
    centre_loss,
    centre_update,
    cosface_loss,
    gaussian_nll,
    landmark_norm_loss,
    laplacian_nll,
    neutral_frontal_confidence,
    uv_albedo_regulariser,
    uv_smoothness,
)


def _images(seed=0):
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.rand(3, 3, 5, 4, generator=g), torch.rand(3, 3, 5, 4, generator=g)
    sigma = torch.rand(3, 1, 5, 4, generator=g) + 0.2
    mask = (torch.rand(3, 1, 5, 4, generator=g) > 0.3).float()
    return pred, target, sigma, mask


def test_laplacian_nll_is_the_laplace_log_density_with_scale_sigma_over_sqrt2():
    pred, target, sigma, mask = _images()
    valid = torch.tensor([True, False, True])
    logp = Laplace(torch.zeros(()), sigma / math.sqrt(2.0)).log_prob(pred - target)  # [3,3,5,4], broadcast
    w = (mask * valid[:, None, None, None]).expand_as(logp)
    expected = -(logp * w).sum() / w.sum()
    got = laplacian_nll(pred, target, sigma, mask, valid, eps=0.0)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # a larger sigma on a pixel with a big error lowers the loss (robustness to outliers)
    big = pred.clone()
    big[0, :, 0, 0] += 5.0
    s2 = sigma.clone()
    s2[0, :, 0, 0] = 3.0
    m1 = torch.ones_like(mask)
    assert laplacian_nll(big, target, s2, m1) < laplacian_nll(big, target, sigma, m1)


def test_gaussian_nll_is_the_normal_log_density_and_resizes_sigma():
    pred, target, sigma, _ = _images(1)
    logp = Normal(torch.zeros(()), sigma).log_prob(pred - target)
    assert float(gaussian_nll(pred, target, sigma, eps=0.0)) == pytest.approx(float(-logp.mean()), rel=1e-5)
    # sigma at another resolution is resized bilinearly to the features
    small = torch.full((3, 1, 2, 2), 0.7)
    expected = -Normal(0.0, 0.7).log_prob(pred - target).mean()
    assert float(gaussian_nll(pred, target, small, eps=0.0)) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_nll(pred, target, torch.ones(2, 1, 5, 4))


def _cosface_by_hand(x, w, y, s, m):
    total = 0.0
    for xi, yi in zip(x.tolist(), y.tolist(), strict=True):
        nx = math.sqrt(sum(v * v for v in xi))
        logits = []
        for j, wj in enumerate(w.tolist()):
            nw = math.sqrt(sum(v * v for v in wj))
            cos = sum(a * b for a, b in zip(xi, wj, strict=True)) / (nx * nw)
            logits.append(s * (cos - (m if j == yi else 0.0)))
        lse = math.log(sum(math.exp(v) for v in logits))
        total += lse - logits[yi]
    return total / len(y)


def test_cosface_against_a_hand_computation_and_valid_rows():
    g = torch.Generator().manual_seed(2)
    x, w = (
        torch.randn(5, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 4, generator=g, dtype=torch.float64),
    )
    y = torch.tensor([0, 2, 1, 1, 0])
    got = cosface_loss(x, w, y, s=10.0, m=0.35)
    assert float(got) == pytest.approx(_cosface_by_hand(x, w, y, 10.0, 0.35), rel=1e-10)
    keep = torch.tensor([True, False, True, False, True])
    got = cosface_loss(
        x, w, torch.tensor([0, -1, 1, 99, 0]), s=10.0, m=0.35, valid=keep
    )  # placeholders ignored
    assert float(got) == pytest.approx(_cosface_by_hand(x[keep], w, y[keep], 10.0, 0.35), rel=1e-10)
    with pytest.raises(ValueError, match="num_identities"):
        cosface_loss(x, w, torch.tensor([0, 1, 2, 3, 0]))


def test_neutral_frontal_confidence_hand_values():
    angles = torch.tensor([[math.pi / 3, 0.0, 0.0], [0.0, math.pi / 2, math.pi / 3], [0.0, 0.0, 0.0]])
    exp = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    f = neutral_frontal_confidence(angles, exp, lam=0.1)
    # (cos60 + 1)(2)(2)/8 = 0.75; (2)(1)(1.5)/8 = 0.375; frontal with ||exp|| = 5: exp(-0.5)
    assert f.tolist() == pytest.approx([0.75, 0.375, math.exp(-0.5)], rel=1e-6)


def test_weighted_centre_update_eq20_by_hand():
    centres = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    x = torch.tensor([[2.0, 0.0], [0.0, 4.0], [3.0, 3.0], [9.0, 9.0]])
    y = torch.tensor([0, 0, 1, 2])
    f = torch.tensor([1.0, 0.5, 0.25, 1.0])
    valid = torch.tensor([True, True, True, False])
    bank = CentreBank(3, 2, rate=0.5)
    bank.centres.copy_(centres)
    bank.update(x, y, f, valid)
    # class 0: (1*(0-2) + 0.5*(0-0)) / 3, (1*(0-0) + 0.5*(0-4)) / 3 = (-2/3, -2/3); c0 -= 0.5 * delta
    # class 1: 0.25 * (1 - 3) / 2 = -0.25 per axis; class 2: the row is not valid, no update
    expected = torch.tensor([[1 / 3, 1 / 3], [1.125, 1.125], [5.0, 5.0]])
    assert torch.allclose(bank.centres, expected)
    # unweighted (Wen et al.): f = 1
    num, count = centre_update(x[:2], y[:2], centres)
    assert torch.allclose(num / (1 + count[:, None]), torch.tensor([[-2 / 3, -4 / 3], [0, 0], [0, 0]]))
    # the loss pulls the features (not the centres) toward the centre: 1/2 mean ||x - c||^2
    feats = x[:3].clone().requires_grad_(True)
    loss = centre_loss(feats, y[:3], centres)
    assert float(loss.detach()) == pytest.approx((4 + 16 + 8) / 2 / 3)
    loss.backward()
    assert torch.allclose(feats.grad, (x[:3] - centres[y[:3]]) / 3)


def test_batch_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, generator=g, dtype=torch.float64) * 0.5 + 0.3
    mu, std = x.mean(0), x.var(0, unbiased=False).sqrt()
    expected = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).mean()
    assert float(batch_kl_standard_normal(x, eps=0.0)) == pytest.approx(float(expected), rel=1e-10)
    valid = torch.zeros(40, dtype=torch.bool)
    valid[:10] = True
    sub = x[:10]
    expected = kl_divergence(Normal(sub.mean(0), sub.var(0, unbiased=False).sqrt()), Normal(0.0, 1.0)).mean()
    assert float(batch_kl_standard_normal(x, valid, eps=0.0)) == pytest.approx(float(expected), rel=1e-10)
    # shrinking toward the mean face costs more than a standard-normal batch
    z = torch.randn(4000, 6, generator=g, dtype=torch.float64)
    assert batch_kl_standard_normal(0.1 * z) > 1.0 > 0.01 > batch_kl_standard_normal(z)


def test_uv_regulariser_against_loops():
    g = torch.Generator().manual_seed(4)
    a = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64)
    r = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64) - 0.5
    smooth = torch.zeros(2, 1, 4, 5, dtype=torch.float64)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                nb = [(i + di, j + dj) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                      if 0 <= i + di < 4 and 0 <= j + dj < 5]  # fmt: skip
                mean = sum(a[b, :, p, q] for p, q in nb) / len(nb)
                smooth[b, 0, i, j] = (a[b, :, i, j] - mean).norm()
    assert torch.allclose(uv_smoothness(a), smooth)
    expected = (smooth[:, 0] + 0.3 * (r**2).sum(1)).mean()
    assert float(uv_albedo_regulariser(a, r, eps_uv=0.3)) == pytest.approx(float(expected))


def test_landmark_norm_loss_by_hand():
    p = torch.zeros(2, 3, 2)
    t = torch.tensor([[[1.0, 2.0], [2.0, 0.0], [0.0, 0.0]], [[9.0, 9.0], [9.0, 9.0], [9.0, 9.0]]])
    assert float(landmark_norm_loss(p, t, torch.tensor([True, False]))) == pytest.approx(3.0 / 3)


# -- centres synchronised across DDP ranks ---------------------------------------------------------------


def _centre_rank(data: dict, rank: int, world: int) -> torch.Tensor:
    bank = CentreBank(4, 3, rate=0.5)
    bank.centres.copy_(data["c0"])
    rows = torch.arange(rank, len(data["y"]), world)  # each rank sees half the batch
    for step in range(2):
        bank.update(data["x"][step][rows], data["y"][rows], data["f"][rows], data["valid"][rows])
    return bank.centres.clone()


def test_centres_stay_identical_across_two_gloo_ranks(gloo_run):
    g = torch.Generator().manual_seed(5)
    data = {
        "c0": torch.randn(4, 3, generator=g, dtype=torch.float64).float(),
        "x": torch.randn(2, 10, 3, generator=g),
        "y": torch.tensor([0, 1, 1, 2, 3, 0, 2, 2, 1, 0]),
        "f": torch.rand(10, generator=g),
        "valid": torch.tensor([True] * 8 + [False, True]),
    }
    single = _centre_rank(data, 0, 1)  # one process with the whole batch
    results = gloo_run(_centre_rank, data, world=2, deadline_s=60.0)
    for got in results:
        assert torch.allclose(got, single, atol=1e-6)
    alone = _centre_rank(data, 0, 2)  # without the all_reduce a rank would drift
    assert not torch.allclose(alone, single, atol=1e-3)

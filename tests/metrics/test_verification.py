"""Verification accuracy: exact threshold search vs a naive reference, contiguous folds, metric ordering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facezoo.metrics import VerificationAccuracy, best_threshold, kfold_accuracy, verification_accuracy


def _naive_kfold(d: np.ndarray, y: np.ndarray, n_folds: int):
    """Reference: np.array_split folds; every midpoint (and ±inf) tried; first maximum kept."""
    accs = []
    for test in np.array_split(np.arange(len(d)), n_folds):
        train = np.setdiff1d(np.arange(len(d)), test)
        u = np.unique(d[train])
        cands = np.concatenate([[-np.inf], (u[:-1] + u[1:]) / 2, [np.inf]])
        train_acc = [np.mean((d[train] < c) == y[train]) for c in cands]
        thr = cands[int(np.argmax(train_acc))]
        accs.append(np.mean((d[test] < thr) == y[test]))
    return np.mean(accs), np.std(accs)


@pytest.mark.parametrize("n", [60, 23, 300])
def test_kfold_matches_naive_reference(n):
    rng = np.random.default_rng(n)
    y = rng.random(n) < 0.5
    d = np.where(y, rng.normal(1.0, 0.4, n), rng.normal(1.6, 0.4, n))
    d[:5] = d[5]  # ties
    mean, std, thr = kfold_accuracy(torch.from_numpy(d), torch.from_numpy(y))
    ref_mean, ref_std = _naive_kfold(d, y, 10)
    assert mean.item() == pytest.approx(ref_mean, abs=1e-12)
    assert std.item() == pytest.approx(ref_std, abs=1e-12)
    assert thr.shape == (10,)


def test_best_threshold_is_optimal_and_smallest_on_ties():
    d = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = torch.tensor([True, True, False, True, False, False])
    # thresholds 0.25 and 0.45 both give 5/6; the smaller wins
    assert best_threshold(d, y).item() == pytest.approx(0.25)
    assert best_threshold(d, torch.ones(6, dtype=torch.bool)).item() == float("inf")
    assert best_threshold(d, torch.zeros(6, dtype=torch.bool)).item() == float("-inf")


def test_folds_are_contiguous():
    # Fold k holds pairs 2k, 2k+1. Pairs 18-19 (the last fold) are "same" only there at a large distance;
    # a threshold trained on the other folds misclassifies exactly that fold.
    d = torch.tensor([0.1, 0.9] * 9 + [0.9, 0.9])
    y = torch.tensor([True, False] * 9 + [True, True])
    mean, std, _ = kfold_accuracy(d, y, n_folds=10)
    per_fold = np.array([1.0] * 9 + [0.0])
    assert mean.item() == pytest.approx(per_fold.mean()) and std.item() == pytest.approx(per_fold.std())


def test_cosine_ignores_norm_euclidean_does_not():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 16, generator=g)
    other = torch.randn(200, 16, generator=g)
    same = torch.arange(200) % 2 == 0
    scale = torch.rand(200, 1, generator=g) * 9 + 1  # same pairs: same direction, very different norms
    emb2 = torch.where(same[:, None], base * scale, other)
    cos_mean, cos_std = verification_accuracy(base, emb2, same, "cosine")
    euc_mean, _ = verification_accuracy(base, emb2, same, "euclidean")
    assert cos_mean.item() == 1.0 and cos_std.item() == 0.0
    assert euc_mean.item() < 0.95


def test_metric_sorts_by_index_and_drops_sampler_padding():
    g = torch.Generator().manual_seed(1)
    n = 50
    e1, e2 = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    same = torch.rand(n, generator=g) < 0.5
    e2[same] = e1[same] + 0.8 * torch.randn(int(same.sum()), 8, generator=g)
    ref = {}
    for name in ("euclidean", "cosine"):
        ref[name] = verification_accuracy(e1, e2, same, name)
    perm = torch.randperm(n, generator=g)
    perm = torch.cat([perm, perm[:3]])  # repeated pairs, as DistributedSampler pads
    m = VerificationAccuracy()
    for chunk in perm.split(16):
        m.update(e1[chunk], e2[chunk], same[chunk], indices=chunk)
    out = m.compute()
    for name in ("euclidean", "cosine"):
        assert out[f"acc_{name}"].item() == pytest.approx(ref[name][0].item())
        assert out[f"acc_{name}_std"].item() == pytest.approx(ref[name][1].item())
    # without indices, arrival order defines the folds
    m2 = VerificationAccuracy()
    m2.update(e1[:20], e2[:20], same[:20])
    m2.update(e1[20:], e2[20:], same[20:])
    assert m2.compute()["acc_euclidean"].item() == pytest.approx(ref["euclidean"][0].item())


def test_input_errors():
    with pytest.raises(ValueError, match="emb2"):
        verification_accuracy(torch.zeros(4, 3), torch.zeros(4, 2), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="distance"):
        verification_accuracy(torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(4, dtype=torch.bool), "l1")
    with pytest.raises(ValueError, match="n_folds"):
        kfold_accuracy(torch.zeros(5), torch.ones(5, dtype=torch.bool), n_folds=10)
    m = VerificationAccuracy()
    with pytest.raises(ValueError, match="indices"):
        m.update(
            torch.zeros(4, 3), torch.zeros(4, 3), torch.ones(4, dtype=torch.bool), indices=torch.ones(4) * 0.5
        )
    m.update(torch.zeros(4, 3), torch.ones(4, 3), torch.ones(4, dtype=torch.bool), indices=torch.arange(4))
    m.update(torch.zeros(4, 3), torch.ones(4, 3), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="indices"):
        m.compute()

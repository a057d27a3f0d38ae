"""Eq. 5 of the nonlinear 3DMM: per-layer normalised squared feature distance, target without gradient."""

import pytest
import torch

from facezoo.losses.feature_reconstruction import FeatureReconstructionLoss, feature_reconstruction_loss
from facezoo.nn import build


def test_brute_force_over_layers_and_rows():
    torch.manual_seed(0)
    net = build("vgg16_features", width_divisor=16)
    loss = FeatureReconstructionLoss(net, ("relu1_2", "relu3_3"))
    pred, target = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    fp, ft = net.extract(pred, ["relu1_2", "relu3_3"]), net.extract(target, ["relu1_2", "relu3_3"])
    rows = []
    for b in range(2):
        per = [((fp[k][b] - ft[k][b]) ** 2).sum() / ft[k][b].numel() for k in ("relu1_2", "relu3_3")]
        rows.append(sum(per) / 2)
    value = loss(pred, target)
    assert float(value.detach()) == pytest.approx(float(sum(rows) / 2), rel=1e-5)
    assert float(loss(pred, target, valid=torch.tensor([False, True])).detach()) == pytest.approx(
        float(rows[1]), rel=1e-5
    )
    value.backward()
    assert pred.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())  # frozen network
    loss.train()
    assert not loss.network.training


def test_layer_mismatch_is_an_error():
    with pytest.raises(ValueError, match="layers"):
        feature_reconstruction_loss([torch.zeros(1, 1, 1, 1)], [])

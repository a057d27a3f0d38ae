import pytest
import torch

from facezoo.losses import landmark_loss, landmark_weights


def test_weights_follow_the_official_code():
    w = landmark_weights("deep3d")
    assert w.shape == (68,)
    assert w[[28, 29, 30]].eq(20).all() and w[60:68].eq(20).all()
    assert w[27].item() == 1 and w[31:36].eq(1).all() and w[:27].eq(1).all() and w[36:60].eq(1).all()
    p = landmark_weights("paper")
    assert p[27:36].eq(20).all() and p[60:68].eq(20).all() and int(p.sum()) == 68 + 17 * 19
    assert landmark_weights("uniform").eq(1).all()
    with pytest.raises(ValueError, match="kind"):
        landmark_weights("nose")


def test_hand_computed_value():
    pred = torch.zeros(2, 3, 2)
    target = torch.zeros(2, 3, 2)
    target[0, 0] = torch.tensor([3.0, 4.0])  # 25
    target[1, 2] = torch.tensor([1.0, 0.0])  # 1, weight 10
    w = torch.tensor([1.0, 1.0, 10.0])
    assert float(landmark_loss(pred, target, w)) == pytest.approx((25.0 + 10.0) / 6)
    # scale multiplies differences: squared loss scales by scale^2
    assert float(landmark_loss(pred, target, w, scale=2.0)) == pytest.approx(4 * (25.0 + 10.0) / 6)


def test_valid_rows_and_gradient():
    pred = torch.zeros(2, 68, 2, requires_grad=True)
    target = torch.ones(2, 68, 2)
    target[1] = 100.0  # placeholder row
    loss = landmark_loss(pred, target, landmark_weights(), valid=torch.tensor([True, False]))
    assert float(loss) == pytest.approx(2.0 * landmark_weights().mean().item())
    loss.backward()
    assert pred.grad[1].abs().sum() == 0


def test_validation():
    with pytest.raises(ValueError, match="target"):
        landmark_loss(torch.zeros(1, 5, 2), torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="weights"):
        landmark_loss(torch.zeros(1, 5, 2), torch.zeros(1, 5, 2), torch.ones(4))

import pytest
import torch

from facezoo.losses import coefficient_l2, cosine_distance, texture_variance


def test_coefficient_l2():
    x = torch.tensor([[3.0, 4.0], [1.0, -1.0]])
    assert coefficient_l2(x).tolist() == [25.0, 2.0]
    with pytest.raises(ValueError, match="coeffs"):
        coefficient_l2(torch.zeros(3))


def test_texture_variance_against_numpy_variance():
    torch.manual_seed(0)
    colours = torch.rand(2, 10, 3, dtype=torch.float64)
    region = torch.zeros(10, dtype=torch.bool)
    region[[1, 3, 4, 8]] = True
    expected = colours[:, region].var(dim=1, unbiased=False).sum(-1).mean()
    assert torch.allclose(texture_variance(colours, region), expected)
    assert torch.allclose(texture_variance(colours), colours.var(dim=1, unbiased=False).sum(-1).mean())
    flat = torch.full((1, 10, 3), 0.4)
    assert float(texture_variance(flat)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="region"):
        texture_variance(colours, torch.zeros(10, dtype=torch.bool))


def test_cosine_distance():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    b = torch.tensor([[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]])
    assert torch.allclose(cosine_distance(a, b), torch.tensor([1.0, 0.0, 2.0]), atol=1e-6)


def test_light_colour_variance_official_formula_and_masking():
    from facezoo.losses.regularisers import light_colour_variance

    g = torch.randn(4, 27, dtype=torch.float64)
    # official reg_loss: gamma.reshape(-1, 3, 9); mean((gamma - mean over RGB)^2) over all entries
    r = g.reshape(4, 3, 9)
    expect = ((r - r.mean(1, keepdim=True)) ** 2).mean()
    torch.testing.assert_close(light_colour_variance(g), expect)
    grey = torch.randn(2, 1, 9).expand(2, 3, 9)
    assert float(light_colour_variance(grey)) < 1e-12  # monochromatic light costs nothing
    valid = torch.tensor([True, False, True, False])
    torch.testing.assert_close(light_colour_variance(g, valid), light_colour_variance(g[valid]))
    with pytest.raises(ValueError, match="gamma"):
        light_colour_variance(torch.zeros(2, 9))

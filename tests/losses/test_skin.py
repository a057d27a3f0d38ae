"""Skin-colour GMM classifier (Deep3DFace §3.2): EM, classification, save/load, fallback rule, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from facezoo.cli import main
from facezoo.losses.skin import (
    GaussianMixture,
    SkinClassifier,
    chai_ngan_probability,
    fit_gmm,
    fit_skin_classifier,
    gmm_log_prob,
    rgb_to_ycbcr,
    skin_attention,
)

SKIN_RGB = (0.85, 0.60, 0.50)
OTHER_RGB = ((0.15, 0.35, 0.75), (0.20, 0.70, 0.25))


def _sample(gmm: GaussianMixture, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    comp = torch.multinomial(gmm.weights, n, replacement=True, generator=g)
    z = torch.randn(n, gmm.means.shape[1], generator=g, dtype=torch.float64)
    chol = torch.linalg.cholesky(gmm.covariances)
    return gmm.means[comp] + (chol[comp] @ z[..., None]).squeeze(-1)


def test_em_recovers_a_known_two_component_mixture():
    a = torch.tensor([[0.02, 0.01, 0.0], [0.01, 0.03, 0.005], [0.0, 0.005, 0.01]], dtype=torch.float64)
    b = torch.tensor([[0.01, -0.004, 0.0], [-0.004, 0.01, 0.0], [0.0, 0.0, 0.04]], dtype=torch.float64)
    truth = GaussianMixture(
        torch.tensor([0.3, 0.7], dtype=torch.float64),
        torch.tensor([[0.2, 0.3, 0.4], [0.8, 0.5, 0.3]], dtype=torch.float64),
        torch.stack([a, b]),
    )
    x = _sample(truth, 8000)
    fit = fit_gmm(x, 2, seed=1)
    order = torch.argsort(fit.means[:, 0])
    w, mu, cov = fit.weights[order], fit.means[order], fit.covariances[order]
    assert torch.allclose(w, truth.weights, atol=0.02)
    assert torch.allclose(mu, truth.means, atol=0.012)
    assert torch.allclose(cov, truth.covariances, atol=0.005)
    # the fitted likelihood is at least the truth's on the same data (EM maximises it)
    assert gmm_log_prob(x, fit).mean() >= gmm_log_prob(x, truth).mean() - 1e-6


def test_gmm_log_prob_matches_scipy():
    from scipy.stats import multivariate_normal

    gmm = GaussianMixture(
        torch.tensor([0.4, 0.6], dtype=torch.float64),
        torch.tensor([[0.0, 0.1, 0.2], [0.5, 0.5, 0.5]], dtype=torch.float64),
        torch.stack(
            [torch.eye(3, dtype=torch.float64) * 0.1, torch.diag(torch.tensor([0.2, 0.05, 0.1]))]
        ).double(),
    )
    x = torch.rand(50, 3, dtype=torch.float64)
    ref = np.log(
        sum(w * multivariate_normal(m, c).pdf(x.numpy()) for w, m, c in zip(*(t.numpy() for t in gmm)))
    )
    assert np.allclose(gmm_log_prob(x, gmm).numpy(), ref)


def _clusters(n: int = 1000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    skin = torch.tensor(SKIN_RGB) + 0.04 * torch.randn(n, 3, generator=g)
    other = torch.cat([torch.tensor(c) + 0.06 * torch.randn(n // 2, 3, generator=g) for c in OTHER_RGB])
    return skin.clamp(0, 1), other.clamp(0, 1)


@pytest.mark.parametrize("colour_space", ["rgb", "ycbcr"])
def test_classifier_separates_synthetic_clusters(colour_space):
    skin, other = _clusters()
    clf = fit_skin_classifier(skin, other, n_components=3, colour_space=colour_space, max_iter=40)
    test_skin, test_other = _clusters(400, seed=5)
    img = torch.cat([test_skin, test_other]).T.reshape(1, 3, 20, 40)
    prob = clf(img)
    assert prob.shape == (1, 1, 20, 40)
    flat = prob.flatten()
    accuracy = ((flat[:400] > 0.5).float().mean() + (flat[400:] <= 0.5).float().mean()) / 2
    assert accuracy > 0.97
    # Bayes' rule by hand for one pixel
    c = torch.tensor([[0.6, 0.5, 0.45]], dtype=torch.float64)
    f = rgb_to_ycbcr(c) / 255 if colour_space == "ycbcr" else c
    ls, lo = gmm_log_prob(f, clf.mixture("skin")), gmm_log_prob(f, clf.mixture("nonskin"))
    p = clf.prior
    expected = torch.exp(ls) * p / (torch.exp(ls) * p + torch.exp(lo) * (1 - p))
    got = clf(c.T.reshape(1, 3, 1, 1))
    assert torch.allclose(got.flatten(), expected, atol=1e-9)


def test_save_load_round_trip(tmp_path):
    skin, other = _clusters(600)
    clf = fit_skin_classifier(skin, other, n_components=2, colour_space="ycbcr", prior=0.3, max_iter=20)
    clf.save(tmp_path / "skin.npz")
    back = SkinClassifier.load(tmp_path / "skin.npz")
    assert back.colour_space == "ycbcr" and back.prior == pytest.approx(0.3)
    img = torch.rand(2, 3, 5, 6)
    assert torch.equal(clf(img), back(img))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not an .npz"):
        SkinClassifier.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="lacks"):
        SkinClassifier.load(tmp_path / "other.npz")


def test_rgb_to_ycbcr_reference_values():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    ycc = rgb_to_ycbcr(rgb)
    assert torch.allclose(ycc[0], torch.tensor([255.0, 128.0, 128.0]), atol=1e-3)
    assert torch.allclose(ycc[1], torch.tensor([0.0, 128.0, 128.0]))
    assert torch.allclose(
        ycc[2], torch.tensor([76.245, 84.972, 255.5]), atol=1e-3
    )  # Cr exceeds 255 for pure red


def test_fallback_rule_is_chai_ngan():
    # build colours with given (Cb, Cr) at Y = 128 by inverting the JPEG transform
    def from_ycc(y, cb, cr):
        r = y + 1.402 * (cr - 128)
        g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
        b = y + 1.772 * (cb - 128)
        return torch.tensor([r, g, b]) / 255

    inside, edge, outside = from_ycc(128, 102, 153), from_ycc(128, 77, 153), from_ycc(128, 102, 190)
    img = torch.stack([inside, edge, outside], 1).reshape(1, 3, 1, 3)
    p = SkinClassifier()(img).flatten()
    assert p[0] > 0.99 and abs(p[1] - 0.5) < 0.01 and p[2] < 1e-3
    assert torch.equal(p, chai_ngan_probability(img).flatten())
    att = skin_attention(torch.tensor([0.2, 0.5, 0.51, 0.9]))
    assert torch.equal(att, torch.tensor([0.2, 0.5, 1.0, 1.0]))


def test_fallback_on_real_faces_sees_skin_at_the_nose(shared_data):
    folder = shared_data / "deep3d_examples"
    clf, hits = SkinClassifier(), []
    for det in sorted((folder / "detections").glob("*.txt"))[:6]:
        img = np.asarray(Image.open(folder / f"{det.stem}.jpg").convert("RGB"), dtype=np.float32) / 255
        nose = np.loadtxt(det)[2]
        x, y = int(nose[0]), int(nose[1])
        patch = torch.from_numpy(img[y - 3 : y + 3, x - 3 : x + 3]).permute(2, 0, 1)[None]
        hits.append(float(clf(patch).mean()))
    assert np.median(hits) > 0.5, hits


def test_input_validation():
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        SkinClassifier()(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="pixels_skin"):
        fit_skin_classifier(torch.rand(10, 4), torch.rand(10, 3), 2)
    with pytest.raises(ValueError, match=r"\[0,1\]"):
        fit_skin_classifier(torch.rand(10, 3) * 255, torch.rand(10, 3), 2)
    with pytest.raises(ValueError, match="both"):
        SkinClassifier(skin=GaussianMixture(torch.ones(1), torch.zeros(1, 3), torch.eye(3)[None]))


def test_cli_fit_and_apply(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir(), (tmp_path / "mask").mkdir()
    for i in range(3):
        mask = np.zeros((16, 20), dtype=bool)
        mask[4:12, 5 + i : 15] = True
        img = np.where(mask[..., None], SKIN_RGB, OTHER_RGB[i % 2]) + rng.normal(0, 0.03, (16, 20, 3))
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(tmp_path / "img" / f"f{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask" / f"f{i}.png")
    out = tmp_path / "skin.npz"
    folders = ["--images", str(tmp_path / "img"), "--masks", str(tmp_path / "mask")]
    args = ["skin", "fit", *folders, "-o", str(out)]
    assert main([*args, "--components", "2", "--max-pixels", "500", "--max-iter", "30"]) == 0
    clf = SkinClassifier.load(out)
    img = torch.from_numpy(np.asarray(Image.open(tmp_path / "img" / "f0.png"), dtype=np.float32) / 255)
    prob = clf(img.permute(2, 0, 1)[None])[0, 0]
    assert prob[6, 10] > 0.9 and prob[0, 0] < 0.1
    assert "reading pixels" in capsys.readouterr().err  # tqdm progress
    assert (
        main(
            [
                "skin",
                "apply",
                str(tmp_path / "img" / "f0.png"),
                "-o",
                str(tmp_path / "o"),
                "--params",
                str(out),
            ]
        )
        == 0
    )
    written = np.asarray(Image.open(tmp_path / "o" / "f0_skin.png"))
    assert written.shape == (16, 20) and written[6, 10] > 230 and written[0, 0] < 25
    # a missing mask is a clear error
    (tmp_path / "img" / "lonely.png").write_bytes((tmp_path / "img" / "f0.png").read_bytes())
    capsys.readouterr()
    assert main(args) == 2  # the CLI's convention for user errors: one `error:` line, exit status 2
    err = capsys.readouterr().err
    assert "error:" in err and "no mask" in err
    assert math.isfinite(float(prob.sum()))

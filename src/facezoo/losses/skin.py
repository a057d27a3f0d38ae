"""Deep3DFace's skin-colour attention: a naive-Bayes classifier with Gaussian-mixture class densities.

Deep3DFace (deep3d.txt §3.2, "Skin Attention"): "we compute a skin-color probability P_i for each pixel. We
train a naive Bayes classifier with Gaussian Mixture Models on a skin image dataset from [26] (Jones & Rehg
2002). For each pixel i, we set A_i = 1 if P_i > 0.5, P_i otherwise", and A weights the photometric loss.

The classifier (Jones & Rehg's statistical colour model): two mixtures, p(c | skin) and p(c | non-skin), and a
prior P(skin); Bayes' rule gives ``P(skin | c) = p(c|skin) P / (p(c|skin) P + p(c|non-skin) (1 - P))``,
computed here as ``sigmoid(log p(c|skin) + log P - log p(c|non-skin) - log(1 - P))``. Colour features
(``colour_space``):

- ``"rgb"``: R, G, B in [0, 1] (Jones & Rehg modelled RGB; they used 16 diagonal-covariance components per
  class, here full covariances by default);
- ``"ycbcr"``: JPEG / ITU-R BT.601 full-range Y, Cb, Cr divided by 255 (so in [0, 1]).

:func:`fit_skin_classifier` runs EM (k-means++ seeding, a few Lloyd steps, then EM with a 1e-6 ridge on the
covariances, as scikit-learn's ``reg_covar``) in float64 torch. ``SkinClassifier.save`` / ``load`` use a small
``.npz``. The mixtures are non-persistent buffers: they come from their own file, never from a method's
checkpoint.

Fallback when no parameters file is available (``SkinClassifier()``): the explicit YCbCr rule of Chai & Ngan,
"Face segmentation using skin-color map in videophone applications", IEEE TCSVT 9(4), 1999: a pixel is skin
when 77 <= Cb <= 127 and 133 <= Cr <= 173 (8-bit full-range YCbCr, Y ignored). Made soft as the product of
four logistic ramps, one per box edge, ``sigmoid((Cb - 77)/s) * sigmoid((127 - Cb)/s) * sigmoid((Cr - 133)/s)
* sigmoid((173 - Cr)/s)`` with ``s = 2`` (8-bit units): ~1 inside the box, ~0.5 on an edge (so thresholding at
0.5 gives back the hard rule), falling to ~0 a few units outside.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

ColourSpace = Literal["rgb", "ycbcr"]
FORMAT = "facezoo-skin-gmm-v1"

#: Chai & Ngan (1999) skin box in 8-bit full-range Cb / Cr.
CHAI_NGAN_CB = (77.0, 127.0)
CHAI_NGAN_CR = (133.0, 173.0)
FALLBACK_SOFTNESS = 2.0


class GaussianMixture(NamedTuple):
    """A D-dimensional Gaussian mixture: ``weights [K]`` (sum 1), ``means [K,D]``, ``covariances [K,D,D]``."""

    weights: Tensor
    means: Tensor
    covariances: Tensor


def rgb_to_ycbcr(rgb: Tensor, dim: int = -1) -> Tensor:
    """JPEG (BT.601 full-range) YCbCr in 8-bit units [0, 255] from RGB in [0, 1], along ``dim`` (size 3).

    Y = 0.299 R + 0.587 G + 0.114 B; Cb = 128 - 0.168736 R - 0.331264 G + 0.5 B; Cr = 128 + 0.5 R - 0.418688 G
    - 0.081312 B, with R, G, B in [0, 255].
    """
    if rgb.shape[dim] != 3:
        raise ValueError(f"rgb_to_ycbcr: dimension {dim} must have size 3, got shape {tuple(rgb.shape)}")
    r, g, b = (255.0 * c for c in rgb.unbind(dim))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], dim)


def colour_features(rgb: Tensor, colour_space: ColourSpace, dim: int = -1) -> Tensor:
    """The classifier's colour features of RGB values in [0, 1] (see module docstring)."""
    if colour_space == "rgb":
        return rgb
    if colour_space == "ycbcr":
        return rgb_to_ycbcr(rgb, dim) / 255.0
    raise ValueError(f"colour_space must be 'rgb' or 'ycbcr', got {colour_space!r}")


def gmm_log_prob(x: Tensor, gmm: GaussianMixture) -> Tensor:
    """``log p(x)`` ``[N]`` of points ``x [N,D]`` under ``gmm`` (full covariances, via Cholesky factors)."""
    w, mu, cov = (t.to(x) for t in gmm)
    chol = torch.linalg.cholesky(cov)  # [K,D,D]
    diff = x[:, None, :] - mu[None]  # [N,K,D]
    # whitening with the inverse Cholesky factor: one small [K,D,D] inverse, then a single einsum
    # (batched triangular solves over N*K tiny systems are far slower on CPU)
    z = torch.einsum("kij,nkj->nki", torch.linalg.inv(chol), diff)
    maha = z.square().sum(-1)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [K]
    log_n = -0.5 * (maha + logdet + x.shape[1] * math.log(2.0 * math.pi))
    return torch.logsumexp(log_n + torch.log(w), dim=1)


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator, n_lloyd: int = 10) -> Tensor:
    """k-means++ seeding then a few Lloyd iterations; returns centres ``[k,D]``."""
    n = x.shape[0]
    centres = [x[torch.randint(n, (1,), generator=gen, device=x.device)].squeeze(0)]
    d2 = (x - centres[0]).square().sum(1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        i = torch.multinomial(probs, 1, generator=gen)
        centres.append(x[i].squeeze(0))
        d2 = torch.minimum(d2, (x - centres[-1]).square().sum(1))
    c = torch.stack(centres)
    for _ in range(n_lloyd):
        label = torch.cdist(x, c).argmin(1)
        for j in range(k):
            members = x[label == j]
            if len(members):
                c[j] = members.mean(0)
    return c


def fit_gmm(
    x: Tensor,
    n_components: int,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    reg_covar: float = 1e-6,
    seed: int = 0,
) -> GaussianMixture:
    """Maximum-likelihood Gaussian mixture of ``x [N,D]`` by EM (float64 on ``x``'s device).

    Stops when the mean log-likelihood improves by less than ``tol`` or after ``max_iter`` iterations.

    Example:
        >>> gmm = fit_gmm(torch.randn(1000, 3), 2)
    """
    if x.ndim != 2 or x.shape[0] < n_components or n_components < 1:
        raise ValueError(
            f"fit_gmm: x must be [N,D] with N >= n_components={n_components}, got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("fit_gmm: x contains non-finite values")
    if max_iter < 1:
        raise ValueError(f"fit_gmm: max_iter must be >= 1, got {max_iter}")
    x = x.to(torch.float64)
    n, d = x.shape
    gen = torch.Generator(device=x.device).manual_seed(seed)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    means = _kmeans_pp(x, n_components, gen)
    # initial responsibilities: hard k-means assignment
    resp = torch.nn.functional.one_hot(torch.cdist(x, means).argmin(1), n_components).to(x.dtype)
    prev = -math.inf
    gmm = GaussianMixture(resp.mean(0), means, eye.expand(n_components, d, d).clone())
    for _ in range(max_iter):
        # M step
        nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps
        weights = nk / n
        means = (resp.T @ x) / nk[:, None]
        diff = x[:, None, :] - means[None]  # [N,K,D]
        covs = torch.einsum("nki,nkj->kij", resp[..., None] * diff, diff)  # a batched matmul over k
        covs = covs / nk[:, None, None] + reg_covar * eye
        gmm = GaussianMixture(weights, means, covs)
        # E step
        w, mu, cov = gmm
        chol = torch.linalg.cholesky(cov)
        z = torch.einsum("kij,nkj->nki", torch.linalg.inv(chol), diff)
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_joint = -0.5 * (z.square().sum(-1) + logdet + d * math.log(2 * math.pi)) + torch.log(w)
        log_norm = torch.logsumexp(log_joint, dim=1, keepdim=True)
        resp = torch.exp(log_joint - log_norm)
        ll = float(log_norm.mean())
        if abs(ll - prev) < tol:
            break
        prev = ll
    return gmm


class SkinClassifier(nn.Module):
    """Per-pixel skin probability ``P(skin | colour)``: images ``[B,3,H,W]`` RGB in [0, 1] -> ``[B,1,H,W]``.

    Args:
        skin, nonskin: the class-conditional mixtures over :func:`colour_features`; both ``None`` selects the
            Chai & Ngan fallback rule (see module docstring).
        prior: P(skin) in (0, 1).
        colour_space: ``"rgb"`` or ``"ycbcr"``.

    Example:
        >>> clf = SkinClassifier()       # the rule-based fallback; SkinClassifier.load("skin.npz") for a fit
        >>> images = torch.tensor([0.8, 0.55, 0.45])[None, :, None, None].expand(1, 3, 2, 2)  # a skin tone
        >>> attention = skin_attention(clf(images))       # Deep3DFace's A, [B,1,H,W]
        >>> attention.shape, bool((attention == 1).all())
        (torch.Size([1, 1, 2, 2]), True)
    """

    def __init__(
        self,
        skin: GaussianMixture | None = None,
        nonskin: GaussianMixture | None = None,
        prior: float = 0.5,
        colour_space: ColourSpace = "rgb",
    ) -> None:
        super().__init__()
        if (skin is None) != (nonskin is None):
            raise ValueError(
                "SkinClassifier: give both skin and nonskin mixtures, or neither (fallback rule)"
            )
        if not 0.0 < prior < 1.0:
            raise ValueError(f"SkinClassifier: prior must be in (0, 1), got {prior}")
        if colour_space not in ("rgb", "ycbcr"):
            raise ValueError(f"SkinClassifier: colour_space must be 'rgb' or 'ycbcr', got {colour_space!r}")
        self.prior = float(prior)
        self.colour_space: ColourSpace = colour_space
        self.is_fallback = skin is None
        for name, gmm in (("skin", skin), ("nonskin", nonskin)):
            if gmm is None:
                continue
            w, mu, cov = (torch.as_tensor(t, dtype=torch.float64) for t in gmm)
            k = w.shape[0]
            if w.ndim != 1 or mu.shape != (k, 3) or cov.shape != (k, 3, 3):
                raise ValueError(
                    f"SkinClassifier: {name} mixture must have weights [K], means [K,3], "
                    "covariances [K,3,3]; "
                    f"got {tuple(w.shape)}, {tuple(mu.shape)}, {tuple(cov.shape)}"
                )
            self.register_buffer(f"{name}_weights", w / w.sum(), persistent=False)
            self.register_buffer(f"{name}_means", mu, persistent=False)
            self.register_buffer(f"{name}_covariances", cov, persistent=False)

    def mixture(self, name: Literal["skin", "nonskin"]) -> GaussianMixture:
        """The stored mixture ``name`` (raises in fallback mode)."""
        if self.is_fallback:
            raise RuntimeError("SkinClassifier: the fallback rule has no mixtures")
        return GaussianMixture(*(getattr(self, f"{name}_{k}") for k in ("weights", "means", "covariances")))

    def forward(self, image: Tensor) -> Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"SkinClassifier expects image [B,3,H,W] RGB in [0,1], got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise TypeError(f"SkinClassifier expects a floating-point image in [0,1], got {image.dtype}")
        b, _, h, w = image.shape
        dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
        x = image.to(dtype)
        if self.is_fallback:
            return chai_ngan_probability(x).to(image.dtype)
        feats = colour_features(x, self.colour_space, dim=1).permute(0, 2, 3, 1).reshape(-1, 3)
        logit = (
            gmm_log_prob(feats, self.mixture("skin"))
            - gmm_log_prob(feats, self.mixture("nonskin"))
            + math.log(self.prior / (1.0 - self.prior))
        )
        return torch.sigmoid(logit).view(b, 1, h, w).to(image.dtype)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the classifier to a ``.npz`` (fallback classifiers have nothing to save)."""
        if self.is_fallback:
            raise RuntimeError("SkinClassifier.save: the fallback rule has no parameters to save")
        arrays = {"format": np.array(FORMAT), "colour_space": np.array(self.colour_space),
                  "prior": np.array(self.prior, dtype=np.float64)}  # fmt: skip
        for name in ("skin", "nonskin"):
            for key, t in zip(("weights", "means", "covariances"), self.mixture(name)):
                arrays[f"{name}_{key}"] = t.detach().cpu().numpy()
        with open(path, "wb") as f:  # np.savez would append ".npz" to other suffixes
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> SkinClassifier:
        """Read a classifier written by :meth:`save`; ``None`` gives the fallback rule."""
        if path is None:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"SkinClassifier.load: no file at {path}")
        try:  # read every array now (allow_pickle=False: an object array fails here, naming the file)
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        except Exception as err:
            raise ValueError(f"SkinClassifier.load: {path} is not an .npz file of arrays ({err})") from err
        required = ["format", "colour_space", "prior"] + [
            f"{n}_{k}" for n in ("skin", "nonskin") for k in ("weights", "means", "covariances")
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"SkinClassifier.load: {path} lacks {missing} (is it a facezoo skin model?)")
        if str(data["format"]) != FORMAT:
            raise ValueError(
                f"SkinClassifier.load: {path} has format {str(data['format'])!r}, expected {FORMAT!r}"
            )

        def mix(n: str) -> GaussianMixture:
            return GaussianMixture(
                *(torch.from_numpy(data[f"{n}_{k}"]) for k in ("weights", "means", "covariances"))
            )

        return cls(mix("skin"), mix("nonskin"), float(data["prior"]), str(data["colour_space"]))  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        if self.is_fallback:
            return "fallback=Chai&Ngan YCbCr rule"
        k = (self.skin_weights.numel(), self.nonskin_weights.numel())
        return f"colour_space={self.colour_space}, prior={self.prior:.3f}, components={k}"


def chai_ngan_probability(image: Tensor, softness: float = FALLBACK_SOFTNESS) -> Tensor:
    """Soft Chai & Ngan skin rule ``[B,1,H,W]`` for ``image [B,3,H,W]`` RGB in [0, 1] (module docstring)."""
    ycc = rgb_to_ycbcr(image, dim=1)
    cb, cr = ycc[:, 1:2], ycc[:, 2:3]
    (cb0, cb1), (cr0, cr1) = CHAI_NGAN_CB, CHAI_NGAN_CR
    s = softness
    return (
        torch.sigmoid((cb - cb0) / s) * torch.sigmoid((cb1 - cb) / s)
        * torch.sigmoid((cr - cr0) / s) * torch.sigmoid((cr1 - cr) / s)
    )  # fmt: skip


def skin_attention(probability: Tensor) -> Tensor:
    """Deep3DFace's attention ``A = 1 where P > 0.5, else P`` (deep3d.txt §3.2); same shape as the input."""
    return torch.where(probability > 0.5, torch.ones_like(probability), probability)


def fit_skin_classifier(
    pixels_skin: Tensor,
    pixels_nonskin: Tensor,
    n_components: int = 16,
    *,
    colour_space: ColourSpace = "rgb",
    prior: float | None = None,
    max_iter: int = 200,
    seed: int = 0,
) -> SkinClassifier:
    """Fit the naive-Bayes GMM skin classifier from labelled pixels.

    Args:
        pixels_skin: ``[N,3]`` RGB in [0, 1] of skin pixels.
        pixels_nonskin: ``[M,3]`` RGB in [0, 1] of non-skin pixels.
        n_components: components per class (Jones & Rehg used 16).
        colour_space: feature space of the mixtures.
        prior: P(skin); ``None`` uses the labelled proportion N / (N + M).
        max_iter, seed: EM settings.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> skin_rgb = (torch.tensor([0.8, 0.55, 0.45]) + 0.03 * torch.randn(500, 3, generator=g)).clamp(0, 1)
        >>> other_rgb = torch.rand(500, 3, generator=g)
        >>> clf = fit_skin_classifier(skin_rgb, other_rgb, n_components=2)   # clf.save("skin.npz") keeps it
        >>> p = clf(torch.tensor([[0.8, 0.55, 0.45], [0.1, 0.2, 0.9]])[:, :, None, None])
        >>> p.flatten().round(decimals=2).tolist()
        [1.0, 0.0]
    """
    for name, p in (("pixels_skin", pixels_skin), ("pixels_nonskin", pixels_nonskin)):
        if not isinstance(p, Tensor) or p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(
                f"fit_skin_classifier: {name} must be a [N,3] tensor, got {getattr(p, 'shape', type(p))}"
            )
        if p.shape[0] < n_components:
            raise ValueError(
                f"fit_skin_classifier: {name} has {p.shape[0]} pixels < n_components={n_components}"
            )
        if p.numel() and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
            raise ValueError(
                f"fit_skin_classifier: {name} must be RGB in [0,1], got range [{p.min()}, {p.max()}]"
            )
    if prior is None:
        prior = pixels_skin.shape[0] / (pixels_skin.shape[0] + pixels_nonskin.shape[0])
    skin = fit_gmm(
        colour_features(pixels_skin.double(), colour_space), n_components, max_iter=max_iter, seed=seed
    )
    other = fit_gmm(
        colour_features(pixels_nonskin.double(), colour_space), n_components, max_iter=max_iter, seed=seed
    )
    return SkinClassifier(skin, other, prior, colour_space)

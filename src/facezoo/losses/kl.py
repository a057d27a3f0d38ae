"""KL prior on a batch of coefficients (SIR, sir.txt Eqs. 8 and 21): ``KL(P(alpha / sigma | I) || N(0, 1))``.

The paper asks the distribution of the regressed shape coefficients, divided by the model's standard
deviations, to be standard normal (the 3DMM's own PCA prior, Eq. 7), so that parameter distances carry the
visual distances of the scans the model was built from. It does not say how ``P`` is estimated; our choice: a
diagonal Gaussian fitted to the batch (per-dimension mean ``mu_k`` and biased variance ``v_k`` over the valid
rows), and the closed form

``KL(N(mu, v) || N(0, 1)) = 1/2 (v + mu^2 - 1 - ln v)``, averaged over the dimensions.

Unlike the ``||alpha||^2`` prior (Eq. 15), it is zero for any batch that *is* standard normal and it grows
when the coefficients shrink toward the mean face (``v -> 0``), SIR's failure case. Coefficients in facezoo
are already in units of std (``alpha / sigma``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.losses.masks import check_valid

__all__ = ["batch_kl_standard_normal"]


def batch_kl_standard_normal(coeffs: Tensor, valid: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """KL of the batch's diagonal Gaussian to ``N(0, I)``, mean over dimensions (module docstring).

    Args:
        coeffs: ``[N,K]`` coefficients in units of std.
        valid: optional bool ``[N]``: the rows that form the batch distribution.
        eps: added to the variance inside the log.

    Returns:
        Scalar; 0 (attached) with fewer than 2 valid rows (no variance to estimate).

    Example:
        >>> x = torch.tensor([[1.0], [-1.0]])            # mean 0, variance 1
        >>> float(batch_kl_standard_normal(x, eps=0.0))
        0.0
    """
    if not isinstance(coeffs, Tensor) or coeffs.ndim != 2 or not coeffs.is_floating_point():
        raise ValueError(
            f"coeffs: expected a float tensor [N,K], got {getattr(coeffs, 'shape', type(coeffs))}"
        )
    valid = check_valid(valid, coeffs.shape[0])
    x = coeffs if valid is None else coeffs[valid.to(coeffs.device)]
    if x.shape[0] < 2:
        return coeffs.sum() * 0.0
    mu = x.mean(0)
    var = x.var(0, unbiased=False)
    return (0.5 * (var + mu**2 - 1.0 - torch.log(var + eps))).mean()

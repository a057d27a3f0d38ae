"""LFW-style 10-fold face verification accuracy from embedding pairs, Euclidean and cosine distances.

SIR (Table II-IV) reports verification accuracy on LFW / CFP-FP / YTF with 3DMM shape parameters (and
reconstructed vertices) as the identity representation, with the Euclidean distance (its point: it mirrors
geometric distance) and, for comparison, the cosine distance. Protocol (LFW's "unrestricted" 10-fold
evaluation, as in the reference implementations, e.g. facenet's ``calculate_roc`` with an exact threshold
search instead of a grid):

- pairs are split into ``n_folds`` = 10 **contiguous** folds in their protocol order (LFW's pairs.txt is 10
  blocks of 300 same + 300 different pairs); with N not divisible by the number of folds the first
  ``N mod n_folds`` folds get one more pair (``torch.tensor_split``, = sklearn ``KFold(shuffle=False)``);
- for each fold, the threshold that maximises the accuracy on the other folds is chosen: "same" iff
  ``distance < threshold``; candidates are every midpoint between consecutive distinct training distances
  (plus ±inf), so the search is exact; on ties the smallest maximising threshold wins;
- the accuracy of that threshold on the held-out fold; report the mean and population std (``np.std``) of
  the fold accuracies (fractions);
- Euclidean distance on the raw embeddings (not L2-normalised: SIR's shape parameters keep their norm);
  cosine distance ``1 - cos(a, b)``.

Under DDP pass ``indices`` (the pair's position in the protocol list): ``compute`` sorts by it and drops
duplicates (DistributedSampler pads with repeated samples), so folds are those of a single process.

Example:
    >>> d = torch.tensor([0.1, 0.2, 0.9, 1.0] * 5)
    >>> same = torch.tensor([True, True, False, False] * 5)
    >>> kfold_accuracy(d, same, n_folds=5)[0]
    tensor(1., dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = [
    "VerificationAccuracy",
    "best_threshold",
    "kfold_accuracy",
    "pair_distance",
    "verification_accuracy",
]

_DISTANCES = ("euclidean", "cosine")


def pair_distance(emb1: torch.Tensor, emb2: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """Distance of each pair ``[N,D]`` x ``[N,D]`` → ``[N]``: Euclidean, or cosine ``1 - cos``."""
    for name, x in (("emb1", emb1), ("emb2", emb2)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a float tensor [N,D], got {got}")
    if emb1.shape != emb2.shape:
        raise ValueError(f"emb2: expected the shape of emb1 {tuple(emb1.shape)}, got {tuple(emb2.shape)}")
    if distance == "euclidean":
        return torch.linalg.vector_norm(emb1 - emb2, dim=-1)
    if distance == "cosine":
        return 1.0 - torch.nn.functional.cosine_similarity(emb1, emb2, dim=-1, eps=1e-12)
    raise ValueError(f"distance: expected one of {_DISTANCES}, got {distance!r}")


def best_threshold(distances: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Threshold maximising the accuracy of "same iff distance < threshold" (exact; smallest on ties)."""
    d = distances.to(torch.float64)
    y = same.to(torch.bool)
    order = torch.argsort(d)
    d, y = d[order], y[order]
    u, counts = torch.unique_consecutive(d, return_counts=True)
    same_per = torch.zeros(len(u), dtype=torch.float64, device=d.device)
    grp = torch.repeat_interleave(torch.arange(len(u), device=d.device), counts)
    same_per.index_add_(0, grp, y.to(torch.float64))
    diff_per = counts.to(torch.float64) - same_per
    zero = d.new_zeros(1)
    # Threshold position k (0..U): k distinct values lie below it.
    same_below = torch.cat([zero, same_per.cumsum(0)])
    diff_below = torch.cat([zero, diff_per.cumsum(0)])
    correct = same_below + (diff_per.sum() - diff_below)
    k = int(torch.argmax(correct))  # first maximum = smallest threshold
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=d.device)
    if k == 0:
        return -inf
    if k == len(u):
        return inf
    return (u[k - 1] + u[k]) / 2


def kfold_accuracy(
    distances: torch.Tensor, same: torch.Tensor, n_folds: int = 10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """10-fold verification accuracy from pair distances (protocol in the module docstring).

    Args:
        distances: ``[N]`` pair distances in protocol order.
        same: ``[N]`` bool, True for same-identity pairs.
        n_folds: number of contiguous folds (>= 2, <= N).

    Returns:
        ``mean``, ``std`` (population) of the fold accuracies, and the ``[n_folds]`` chosen thresholds.
    """
    if distances.ndim != 1 or same.shape != distances.shape:
        raise ValueError(
            f"distances/same: expected matching [N], got {tuple(distances.shape)} and {tuple(same.shape)}"
        )
    n = distances.numel()
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds: expected 2 <= n_folds <= N = {n}, got {n_folds}")
    same = same.to(torch.bool)
    folds = torch.tensor_split(torch.arange(n, device=distances.device), n_folds)
    accs, thrs = [], []
    for test in folds:
        train = torch.ones(n, dtype=torch.bool, device=distances.device)
        train[test] = False
        thr = best_threshold(distances[train], same[train])
        pred = distances[test].to(torch.float64) < thr
        accs.append((pred == same[test]).to(torch.float64).mean())
        thrs.append(thr)
    accs_t = torch.stack(accs)
    return accs_t.mean(), accs_t.std(unbiased=False), torch.stack(thrs)


def verification_accuracy(
    emb1: torch.Tensor, emb2: torch.Tensor, same: torch.Tensor, distance: str = "euclidean", n_folds: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the ``n_folds``-fold verification accuracy of embedding pairs ``[N,D]``."""
    mean, std, _ = kfold_accuracy(pair_distance(emb1, emb2, distance), same, n_folds)
    return mean, std


class VerificationAccuracy(Metric):
    """10-fold verification accuracy with Euclidean and cosine distances (see the module docstring).

    ``update(emb1 [B,D], emb2 [B,D], same [B] bool, indices [B] int = None)``; ``compute()`` →
    ``{"acc_euclidean", "acc_euclidean_std", "acc_cosine", "acc_cosine_std"}`` (fractions). Distances,
    labels and indices are ``cat`` states (a few floats per pair).

    Example:
        >>> m = VerificationAccuracy()
        >>> e = torch.randn(40, 8)
        >>> m.update(e, e + 0.01 * torch.randn(40, 8), torch.ones(40, dtype=torch.bool))
        >>> m.update(e, torch.randn(40, 8), torch.zeros(40, dtype=torch.bool))
        >>> float(m.compute()["acc_euclidean"]) > 0.9
        True
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, n_folds: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if n_folds < 2:
            raise ValueError(f"n_folds: expected >= 2, got {n_folds}")
        self.n_folds = n_folds
        self.add_state("dist_euclidean", [], dist_reduce_fx="cat")
        self.add_state("dist_cosine", [], dist_reduce_fx="cat")
        self.add_state("same", [], dist_reduce_fx="cat")
        self.add_state("index", [], dist_reduce_fx="cat")

    def update(
        self, emb1: torch.Tensor, emb2: torch.Tensor, same: torch.Tensor, indices: torch.Tensor | None = None
    ) -> None:
        same = torch.as_tensor(same, device=emb1.device)
        if same.shape != emb1.shape[:1]:
            raise ValueError(f"same: expected [{emb1.shape[0]}] bool, got {tuple(same.shape)}")
        if indices is None:
            idx = torch.full_like(same, -1, dtype=torch.float64)  # arrival order
        else:
            idx = torch.as_tensor(indices, device=emb1.device)
            if idx.shape != same.shape or idx.is_floating_point() or (idx < 0).any():
                raise ValueError(
                    f"indices: expected non-negative int [{same.numel()}], got {idx.dtype} {idx.shape}"
                )
            idx = idx.to(torch.float64)  # one dtype for all states (exact below 2**53)
        e1, e2 = emb1.detach().to(torch.float64), emb2.detach().to(torch.float64)
        self.dist_euclidean.append(pair_distance(e1, e2, "euclidean"))
        self.dist_cosine.append(pair_distance(e1, e2, "cosine"))
        self.same.append(same.to(torch.float64))
        self.index.append(idx)

    def compute(self) -> dict[str, torch.Tensor]:
        d_euc, d_cos = dim_zero_cat(self.dist_euclidean), dim_zero_cat(self.dist_cosine)
        same, idx = dim_zero_cat(self.same) > 0.5, dim_zero_cat(self.index)
        has = idx >= 0
        if has.any():
            if not has.all():
                raise ValueError("indices: give them in every update or in none")
            order = torch.argsort(idx, stable=True)
            idx = idx[order]
            keep = torch.ones_like(has)
            keep[1:] = idx[1:] != idx[:-1]  # DistributedSampler's padding repeats pairs
            order = order[keep]
            d_euc, d_cos, same = d_euc[order], d_cos[order], same[order]
        out = {}
        for name, d in (("euclidean", d_euc), ("cosine", d_cos)):
            mean, std, _ = kfold_accuracy(d, same, self.n_folds)
            out[f"acc_{name}"], out[f"acc_{name}_std"] = mean, std
        return out

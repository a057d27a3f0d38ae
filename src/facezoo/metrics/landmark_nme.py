"""2D landmark NME with AFLW2000-3D yaw buckets (3DDFA's protocol) — functional and torchmetrics forms.

Protocol (3DDFA / 3DDFA_V2 ``benchmark_aflw2000.py``, followed here exactly):

- ground truth = the (x, y) rows of ``pt3d_68`` (the 2D projections of the 68 3D landmarks, image pixels),
  all 68 points, visible or not;
- predictions made in a crop are mapped back to the original image (3DDFA maps its 120x120 crop through the
  ROI box: ``x * (ex - sx) / 120 + sx``); here any per-sample affine does, see :func:`crop_to_original`;
- per image: mean over the 68 points of the Euclidean distance, divided by ``sqrt(w * h)`` of the box spanned
  by the ground-truth points' min/max in x and y;
- yaw buckets by ``|yaw|`` in degrees: ``[0, 30]``, ``(30, 60]``, ``(60, 90]`` — exactly 3DDFA's
  ``<= 30``, ``> 30 & <= 60``, ``> 60`` (so a boundary yaw goes to the lower bucket and ``|yaw| > 90``, which
  AFLW2000-3D has a few of, to the last); AFLW2000-3D's yaw is ``Pose_Para[0, 1]`` in radians;
- the headline number is the mean of the three bucket means (3DDFA's "[0, 90] Mean"), not the per-image
  mean; its "Std" is the std of the three bucket means.

Bad input (the community protocol has no such case; facezoo's choice, so that no figure is silently wrong):

- a non-finite prediction (NaN/inf) is a method failure: :meth:`LandmarkNME.update` refuses it with an error
  naming the sample (dataset ``index`` when given, else the row of the batch). Skipping it would flatter the
  method; giving it some finite error would be arbitrary;
- a degenerate ground truth (non-finite landmarks, or a box of zero width or height, whose normaliser is 0)
  cannot be scored: the sample is skipped, counted (``skipped`` in ``compute()``) and a warning names it;
- a non-finite yaw counts in ``nme``/``nme_std`` but in no yaw bucket (``no_yaw`` in ``compute()`` counts
  them, with a warning), never in the 0-30 bucket.

Other normalisers (MMFace's Eq. 10 uses the diagonal of the face region): ``"diagonal"`` =
``sqrt(w² + h²)`` of the same box; ``"interocular"`` = distance between the outer eye corners, points 36 and
45 in iBUG 0-based order. Values are fractions (multiply by 100 for the tables' %).

Example:
    >>> gt = torch.tensor([[[0.0, 0.0], [4.0, 0.0], [4.0, 1.0], [0.0, 1.0]]])
    >>> landmark_nme(gt + torch.tensor([0.0, 1.0]), gt)  # every point 1 px off, box sqrt(4*1) = 2
    tensor([0.5000])
"""

from __future__ import annotations

import warnings

import torch
from torchmetrics import Metric

__all__ = [
    "YAW_BUCKETS",
    "LandmarkNME",
    "crop_to_original",
    "landmark_nme",
    "landmark_normalizer",
    "yaw_bucket",
]

#: (low, high] bounds in degrees of |yaw| for the three AFLW2000-3D buckets (the first includes 0).
YAW_BUCKETS: tuple[tuple[int, int], ...] = ((0, 30), (30, 60), (60, 90))
_NORMALIZERS = ("box", "diagonal", "interocular")
OUTER_EYE_CORNERS = (36, 45)  # iBUG-68, 0-based: right eye outer corner, left eye outer corner


def _check_landmarks(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] not in (2, 3) or not x.is_floating_point():
        raise ValueError(
            f"{name}: expected a float tensor [B,K,2] or [B,K,3], got {x.dtype} {tuple(x.shape)}"
        )


def yaw_bucket(yaw: torch.Tensor) -> torch.Tensor:
    """Bucket index (0, 1, 2) of each yaw in degrees: ``|yaw| <= 30``, ``30 < |yaw| <= 60``, ``|yaw| > 60``.

    Args:
        yaw: ``[B]`` degrees (sign ignored).

    Returns:
        ``[B]`` int64.

    Example:
        >>> yaw_bucket(torch.tensor([-30.0, 30.5, 60.0, 95.0]))
        tensor([0, 1, 1, 2])
    """
    a = yaw.abs()
    return (a > 30).long() + (a > 60).long()


def crop_to_original(points: torch.Tensor, crop_transform: torch.Tensor) -> torch.Tensor:
    """Map crop-pixel points back to the original image by inverting the crop's affine.

    ``crop_transform`` maps original-image pixels to crop pixels: ``p_crop = A @ p_orig + b`` with
    ``crop_transform = [A | b]``; both frames use facezoo's continuous pixel coordinates (pixel centres at
    +0.5). The inverse ``p_orig = A⁻¹ (p_crop - b)`` is applied to x, y; a z column, if any, is kept.

    Args:
        points: ``[B,K,2]`` or ``[B,K,3]`` crop pixels.
        crop_transform: ``[B,2,3]`` affine, original → crop.

    Returns:
        ``[B,K,2|3]`` original-image pixels.

    Example:
        >>> T = torch.tensor([[[0.5, 0.0, -10.0], [0.0, 0.5, -20.0]]])  # crop at (20, 40), half size
        >>> crop_to_original(torch.tensor([[[0.0, 0.0], [60.0, 60.0]]]), T)
        tensor([[[ 20.,  40.],
                 [140., 160.]]])
    """
    _check_landmarks("points", points)
    if (
        not isinstance(crop_transform, torch.Tensor)
        or crop_transform.shape != (points.shape[0], 2, 3)
        or not crop_transform.is_floating_point()
    ):
        got = (
            tuple(crop_transform.shape) if isinstance(crop_transform, torch.Tensor) else type(crop_transform)
        )
        raise ValueError(f"crop_transform: expected a float tensor [{points.shape[0]},2,3], got {got}")
    T = crop_transform.to(device=points.device, dtype=points.dtype)
    xy = torch.linalg.solve(T[:, None, :, :2], (points[..., :2] - T[:, None, :, 2])[..., None])[..., 0]
    return torch.cat([xy, points[..., 2:]], dim=-1)


def landmark_normalizer(target: torch.Tensor, normalizer: str = "box") -> torch.Tensor:
    """Per-image NME normaliser from ground-truth landmarks ``[B,K,2|3]`` (x, y used) → ``[B]`` pixels.

    ``"box"``: ``sqrt(w * h)`` of the min/max box (AFLW2000-3D, 3DDFA); ``"diagonal"``: ``sqrt(w² + h²)``
    (MMFace Eq. 10's face-region diagonal); ``"interocular"``: ``||p36 - p45||`` (outer eye corners, iBUG
    0-based, needs K = 68).
    """
    _check_landmarks("target", target)
    if normalizer not in _NORMALIZERS:
        raise ValueError(f"normalizer: expected one of {_NORMALIZERS}, got {normalizer!r}")
    xy = target[..., :2]
    if normalizer == "interocular":
        if xy.shape[1] != 68:
            raise ValueError(f"target: 'interocular' needs the 68 iBUG landmarks, got K={xy.shape[1]}")
        i, j = OUTER_EYE_CORNERS
        return torch.linalg.vector_norm(xy[:, i] - xy[:, j], dim=-1)
    wh = xy.amax(dim=1) - xy.amin(dim=1)  # [B,2]
    if normalizer == "box":
        return (wh[:, 0] * wh[:, 1]).sqrt()
    return torch.linalg.vector_norm(wh, dim=-1)


def landmark_nme(
    preds: torch.Tensor,
    target: torch.Tensor,
    normalizer: str = "box",
    crop_transform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image normalised mean landmark error (fraction, not %).

    Args:
        preds: ``[B,K,2|3]`` predicted landmarks, original-image pixels (or crop pixels with
            ``crop_transform``); only x, y are compared.
        target: ``[B,K,2|3]`` ground truth, original-image pixels (AFLW2000-3D: ``pt3d_68.T``).
        normalizer: ``"box"`` (default, AFLW2000-3D), ``"diagonal"`` or ``"interocular"``; see
            :func:`landmark_normalizer`.
        crop_transform: optional ``[B,2,3]`` affine original → crop pixels of each prediction.

    Returns:
        ``[B]`` NME of each image; differentiable with respect to ``preds``.
    """
    _check_landmarks("preds", preds)
    _check_landmarks("target", target)
    if preds.shape[:2] != target.shape[:2]:
        raise ValueError(
            f"preds: expected [B,K] = {tuple(target.shape[:2])} as target, got {tuple(preds.shape)}"
        )
    if crop_transform is not None:
        preds = crop_to_original(preds, crop_transform)
    target = target.to(device=preds.device, dtype=preds.dtype)
    err = torch.linalg.vector_norm(preds[..., :2] - target[..., :2], dim=-1).mean(dim=1)
    return err / landmark_normalizer(target, normalizer)


class LandmarkNME(Metric):
    """AFLW2000-3D-style landmark NME with yaw buckets (see the module docstring for the exact protocol).

    ``update(preds, target, yaw=None, crop_transform=None)`` with ``preds``/``target`` ``[B,K,2|3]`` pixels,
    ``yaw`` ``[B]`` degrees (without it only the per-image statistics are kept) and ``crop_transform``
    ``[B,2,3]`` (original → crop) when the predictions are in crop pixels.

    ``compute()`` returns a dict of scalar tensors (fractions):
    ``nme`` (per-image mean), ``nme_std`` (per-image population std), ``nme_0_30``, ``nme_30_60``,
    ``nme_60_90`` (bucket means; NaN when a bucket is empty), ``nme_balanced`` (mean of the non-empty bucket
    means: the tables' number) and ``nme_balanced_std`` (population std of the bucket means, 3DDFA's "Std"),
    plus the counts ``skipped`` (degenerate ground truth) and ``no_yaw`` (non-finite yaw; in no bucket).
    Non-finite predictions raise (module docstring). States are sums and counts reduced with ``sum``, so
    the result is exact under DDP.

    Example:
        >>> m = LandmarkNME()
        >>> gt = torch.rand(4, 68, 2) * 100
        >>> m.update(gt + 1.0, gt, yaw=torch.tensor([10.0, 45.0, -70.0, 0.0]))
        >>> sorted(m.compute())[:3]
        ['nme', 'nme_0_30', 'nme_30_60']
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, normalizer: str = "box", **kwargs) -> None:
        super().__init__(**kwargs)
        if normalizer not in _NORMALIZERS:
            raise ValueError(f"normalizer: expected one of {_NORMALIZERS}, got {normalizer!r}")
        self.normalizer = normalizer
        n = len(YAW_BUCKETS)
        f64 = torch.float64
        self.add_state("bucket_sum", torch.zeros(n, dtype=f64), dist_reduce_fx="sum")
        self.add_state("bucket_count", torch.zeros(n, dtype=f64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("total_sq", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("skipped", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("no_yaw", torch.zeros((), dtype=f64), dist_reduce_fx="sum")

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        yaw: torch.Tensor | None = None,
        crop_transform: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> None:
        """Add a batch. ``index`` (``[B]``, optional): the samples' dataset indices, named in errors and
        warnings (else the rows of the batch are)."""
        _check_landmarks("preds", preds)
        _check_landmarks("target", target)

        def names(rows: torch.Tensor) -> list[int]:
            rows = rows.nonzero().flatten().cpu()
            ids = torch.as_tensor(index).reshape(-1).cpu()[rows] if index is not None else rows
            return [int(i) for i in ids]

        what = "dataset index" if index is not None else "batch row"
        bad_pred = ~torch.isfinite(preds.detach()[..., :2]).flatten(1).all(1)
        if bad_pred.any():
            raise ValueError(
                f"LandmarkNME: non-finite (NaN/inf) landmark predictions for {what} {names(bad_pred)}; "
                "the protocol cannot score a failed prediction (it would turn every figure NaN)"
            )
        nme = landmark_nme(preds.detach(), target, self.normalizer, crop_transform).to(torch.float64)
        bad_target = ~torch.isfinite(nme)  # non-finite ground truth, or a zero-area box (normaliser 0)
        if bad_target.any():
            warnings.warn(
                f"LandmarkNME: skipped {int(bad_target.sum())} sample(s) with degenerate ground truth "
                f"(non-finite landmarks or a zero-{self.normalizer} normaliser): {what} {names(bad_target)}",
                stacklevel=2,
            )
            self.skipped += bad_target.sum()
        good = ~bad_target
        nme_good = nme[good]
        self.total += nme_good.sum()
        self.total_sq += (nme_good**2).sum()
        self.count += nme_good.numel()
        if yaw is not None:
            yaw = torch.as_tensor(yaw, device=nme.device)
            if yaw.shape != nme.shape:
                raise ValueError(f"yaw: expected [{nme.numel()}] degrees, got {tuple(yaw.shape)}")
            no_yaw = good & ~torch.isfinite(yaw)
            if no_yaw.any():
                warnings.warn(
                    f"LandmarkNME: non-finite yaw for {what} {names(no_yaw)}: counted in nme, in no bucket",
                    stacklevel=2,
                )
                self.no_yaw += no_yaw.sum()
            keep = good & torch.isfinite(yaw)
            b = yaw_bucket(yaw[keep])
            self.bucket_sum.index_add_(0, b, nme[keep])
            self.bucket_count.index_add_(0, b, torch.ones_like(nme[keep]))

    def compute(self) -> dict[str, torch.Tensor]:
        mean = self.total / self.count
        std = (self.total_sq / self.count - mean**2).clamp_min(0).sqrt()
        bucket = self.bucket_sum / self.bucket_count  # NaN where empty
        filled = bucket[self.bucket_count > 0]
        out = {"nme": mean, "nme_std": std}
        for (lo, hi), v in zip(YAW_BUCKETS, bucket):
            out[f"nme_{lo}_{hi}"] = v
        out["nme_balanced"] = filled.mean() if filled.numel() else mean.new_tensor(float("nan"))
        out["nme_balanced_std"] = (
            filled.std(unbiased=False) if filled.numel() else mean.new_tensor(float("nan"))
        )
        out["skipped"], out["no_yaw"] = self.skipped.clone(), self.no_yaw.clone()
        return out

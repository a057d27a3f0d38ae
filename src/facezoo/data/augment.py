"""Training augmentations on :class:`~facezoo.data.sample.Sample` dicts (single-view or with a view axis).

* colour jitter (kornia ``ColorJitter``; brightness/contrast/saturation/hue as in kornia's docs),
* MVF-Net's random box shift: a uniform 0-5 % shift of the crop box, drawn here as a per-axis offset in
  ``[-max_shift, max_shift]`` x side (:func:`random_box_shift`, fed to
  :func:`~facezoo.data.align.landmark_box_affine`; the paper only says "0~0.05 of input size"),
* horizontal flip (:func:`hflip_sample`): image, landmarks (with :data:`IBUG68_FLIP` /
:data:`LANDMARKS5_FLIP`),
  the crop affine, yaw, and the 300W-LP pose. A mirrored face is a different 3DMM shape, so ``params["id"]``,
  ``["exp"]`` and ``["tex"]`` are *removed* by the flip: no label is ever silently wrong.

Randomness comes from ``torch``'s generator (seeded per DataLoader worker by PyTorch), so runs are
reproducible.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facezoo.data.align import flip_pose_300wlp
from facezoo.data.landmarks import IBUG68_FLIP, LANDMARKS5_FLIP


def random_box_shift(
    batch: int = 1, max_shift: float = 0.05, generator: torch.Generator | None = None
) -> Tensor:
    """``[batch,2]`` box-centre offsets, uniform in ``[-max_shift, max_shift]`` (fraction of the box side)."""
    if not 0.0 <= max_shift < 0.5:
        raise ValueError(f"max_shift must be in [0, 0.5), got {max_shift}")
    return (torch.rand(batch, 2, generator=generator, dtype=torch.float64) * 2 - 1) * max_shift


def hflip_sample(sample: dict) -> dict:
    """Mirror a sample horizontally (crop width ``W``: ``x -> W - x``, exact under facezoo's pixel centres).

    Works for ``image [3,H,W]`` and ``[V,3,H,W]``. Landmark identities are permuted so that index i keeps its
    meaning (e.g. the left eye corner stays in slot 36). ``affine`` becomes ``F @ A`` with ``F =
    [[-1,0,W],[0,1,0]]``.
    """
    out = dict(sample)
    image = sample["image"]
    width = image.shape[-1]
    out["image"] = image.flip(-1)
    if "mask" in sample:
        out["mask"] = sample["mask"].flip(-1)
    for key, perm in (
        ("landmarks68", IBUG68_FLIP),
        ("landmarks68_3d", IBUG68_FLIP),
        ("landmarks5", LANDMARKS5_FLIP),
    ):
        if key in sample:
            lm = sample[key][..., list(perm), :].clone()
            lm[..., 0] = width - lm[..., 0]
            out[key] = lm
    if "affine" in sample:
        a = sample["affine"].clone()
        a[..., 0, :] = -a[..., 0, :]
        a[..., 0, 2] += width
        out["affine"] = a
    if "yaw" in sample:
        yaw = sample["yaw"]
        out["yaw"] = -yaw if not isinstance(yaw, Tensor) else yaw.neg()
    if "params" in sample:
        params = {k: v for k, v in sample["params"].items() if k not in ("id", "exp", "tex")}
        if "pose" in params:
            pose = params["pose"]
            params["pose"] = flip_pose_300wlp(pose.reshape(-1, 7), width).reshape(pose.shape)
        out["params"] = params
    return out


class ColorJitter:
    """Per-sample colour jitter (kornia). ``image [3,H,W]`` or ``[V,3,H,W]`` in [0, 1]; all views of a
    multi-view sample get independent parameters (different cameras), like MVF-Net's independently captured
    views."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.02,
        p: float = 1.0,
    ):
        import kornia.augmentation as K

        self.op = K.ColorJitter(brightness, contrast, saturation, hue, p=p)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        out = dict(sample)
        flat = image.reshape(-1, *image.shape[-3:])
        out["image"] = self.op(flat).clamp_(0, 1).reshape(image.shape)
        return out


class Augment:
    """Composable train-time augmentation: colour jitter with probability ``p_color``, horizontal flip with
    probability ``p_flip``. (The box shift is applied by the datasets while cropping.)"""

    def __init__(self, p_flip: float = 0.0, p_color: float = 0.0, color_strength: float = 0.2):
        self.p_flip, self.p_color = p_flip, p_color
        self.jitter = (
            ColorJitter(color_strength, color_strength, color_strength, color_strength / 10)
            if p_color > 0
            else None
        )

    def __call__(self, sample: dict) -> dict:
        if self.jitter is not None and torch.rand(()) < self.p_color:
            sample = self.jitter(sample)
        if self.p_flip > 0 and torch.rand(()) < self.p_flip:
            sample = hflip_sample(sample)
        return sample

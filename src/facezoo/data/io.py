"""Image loading and the bad-sample policy shared by every facezoo dataset.

A bad input (corrupt or truncated image, missing or malformed label file, wrong landmark count) raises
:class:`BadSampleError` naming the file and the problem. Datasets built on :class:`FaceDataset` either let it
propagate (``on_bad_sample="error"``, the default) or skip the sample (``"skip"``): the next good sample takes
its place, the reason travels with the batch (``batch["skipped"]``) and :class:`ReportingDataLoader` reports
the count and the files at the end of the epoch. A sample is never silently wrong.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)

OnBadSample = Literal["error", "skip"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class BadSampleError(ValueError):
    """A sample that cannot be read. ``path`` is the offending file, ``problem`` what is wrong with it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_root(root: str | Path, what: str) -> Path:
    """``root`` as a Path, or a ``FileNotFoundError`` that says which dataset root is missing."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} root {str(path)!r} does not exist or is not a directory")
    return path


def load_image_uint8(path: str | Path) -> np.ndarray:
    """Decode an image fully into ``[H,W,3]`` uint8 RGB (truncated or corrupt: :class:`BadSampleError`)."""
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, "image file is missing")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated JPEG fails here rather than returning grey rows
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise BadSampleError(path, f"corrupt or truncated image ({err})") from err


def load_image(path: str | Path) -> Tensor:
    """Image file -> ``[3,H,W]`` float32 in [0, 1] (RGB). Raises :class:`BadSampleError` naming the file."""
    return to_tensor(load_image_uint8(path))


def to_tensor(array: np.ndarray) -> Tensor:
    """``[H,W,3]`` uint8 -> ``[3,H,W]`` float32 in [0, 1]."""
    return (
        torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous().float().mul_(1.0 / 255.0)
    )


class FaceDataset(Dataset):
    """Base of facezoo's map-style datasets: ``__getitem__`` calls :meth:`load` and applies the bad-sample
    policy.

    Subclasses set ``self.items`` (one entry per sample) and implement ``load(index) -> Sample``. With
    ``on_bad_sample="skip"``, a bad sample is replaced by the next good one (cyclically, so the epoch length
    and batch sizes do not change) and ``"_skipped"`` records ``"path: problem"`` for :func:`collate`.
    """

    items: list[Any]

    def __init__(self, on_bad_sample: OnBadSample = "error"):
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        self.on_bad_sample = on_bad_sample

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if self.on_bad_sample == "error":
            sample = self.load(index)
            sample.setdefault("index", int(index))
            return sample
        skipped: list[str] = []
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            try:
                sample = self.load(i)
            except BadSampleError as err:
                skipped.append(str(err))
                continue
            sample.setdefault("index", int(i))
            if skipped:
                sample["_skipped"] = skipped
            return sample
        raise BadSampleError(
            f"<all {len(self)} samples>", "every sample of the dataset is bad: " + skipped[0]
        )


class ReportingDataLoader(DataLoader):
    """A DataLoader that counts the bad samples skipped during an epoch and reports them when the epoch ends
    (a ``UserWarning`` with the count and the first files, and ``self.last_skipped`` for programmatic
    checks)."""

    last_skipped: list[str]

    def __iter__(self) -> Iterator:
        self.last_skipped = []
        for batch in super().__iter__():
            if isinstance(batch, dict):
                self.last_skipped.extend(batch.get("skipped", []))
            yield batch
        if self.last_skipped:
            unique = sorted(set(self.last_skipped))
            shown = "\n  ".join(unique[:10])
            more = f"\n  ... and {len(unique) - 10} more" if len(unique) > 10 else ""
            warnings.warn(
                f"skipped {len(self.last_skipped)} bad samples this epoch:\n  {shown}{more}", stacklevel=2
            )

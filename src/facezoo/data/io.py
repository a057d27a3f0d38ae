"""Image loading and the bad-sample policy shared by every facezoo dataset.

A bad input (corrupt or truncated image, missing or malformed label file, wrong landmark count) raises
:class:`BadSampleError` naming the file and the problem. Datasets built on :class:`FaceDataset` either let it
propagate (``on_bad_sample="error"``, the default) or skip the sample (``"skip"``): the dataset returns a
*skip marker* (:func:`skip_marker`, a dict holding only the reason), :func:`~facezoo.data.collate` drops it
(the batch gets one sample smaller; no other sample takes its place, so none counts twice), the reason
travels with the batch (``batch["skipped"]``) and :class:`ReportingDataLoader` counts the skips
(``loader.skipped``) and reports the count and the files at the end of the epoch. A sample is never silently
wrong.
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

    def __init__(self, path: str | Path, problem: str | None = None):
        self.path = str(path)
        self.problem = problem
        # one argument: a message rebuilt by torch's DataLoader when it re-raises a worker's error
        super().__init__(self.path if problem is None else f"{self.path}: {problem}")


SKIPPED = "_skipped"


def skip_marker(reason: str) -> dict:
    """What a dataset with ``on_bad_sample="skip"`` returns for a bad sample: ``{"_skipped": [reason]}``.

    Example:
        >>> is_skip_marker(skip_marker("a.jpg: truncated"))
        True
    """
    return {SKIPPED: [str(reason)]}


def is_skip_marker(sample: object) -> bool:
    """True for a :func:`skip_marker` (a dict with no key other than ``"_skipped"``)."""
    return isinstance(sample, dict) and SKIPPED in sample and len(sample) == 1


def check_root(root: str | Path, what: str) -> Path:
    """``root`` as a Path, or a ``FileNotFoundError`` that says which dataset root is missing."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{what} root {str(path)!r} does not exist or is not a directory")
    return path


_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit (and 32-bit int) greyscale


def _to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    """``[H,W,3]`` uint8 RGB of a decoded image. 16-bit greyscale (PNG ``I;16``; Pillow may also open it as
    32-bit ``I``) is scaled by 255/65535: Pillow's own ``convert("RGB")`` clips those values at 255, which
    turns almost every pixel white."""
    if img.mode in _WIDE_MODES:
        wide = np.asarray(img).astype(np.int64)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise BadSampleError(
                path, f"{img.mode} image with values in [{wide.min()}, {wide.max()}]; expected 0..65535"
            )
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # round(v * 255 / 65535)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.array(img.convert("RGB"))


def load_image_uint8(path: str | Path) -> np.ndarray:
    """Decode an image fully into ``[H,W,3]`` uint8 RGB (truncated or corrupt: :class:`BadSampleError`).

    16-bit greyscale images are scaled to 8 bits (``round(v * 255 / 65535)``); an image over PIL's
    decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is a :class:`BadSampleError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise BadSampleError(path, "image file is missing")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated JPEG fails here rather than returning grey rows
            return _to_rgb8(img, path)
    except Image.DecompressionBombError as err:
        raise BadSampleError(
            path,
            f"image too large for PIL's decompression-bomb guard ({err}); if the image is genuine, raise "
            "PIL.Image.MAX_IMAGE_PIXELS",
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if isinstance(err, BadSampleError):
            raise
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
    ``on_bad_sample="skip"``, a bad sample comes back as a :func:`skip_marker` holding ``"path: problem"``;
    :func:`~facezoo.data.collate` drops it and lists the reason in ``batch["skipped"]`` (the batch is one
    smaller: a bad sample is never replaced by another, which would count that one twice).
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
        try:
            sample = self.load(index)
        except BadSampleError as err:
            return skip_marker(str(err))
        sample.setdefault("index", int(index))
        return sample


class ReportingDataLoader(DataLoader):
    """A DataLoader that counts the bad samples skipped during an epoch and reports them when the epoch ends
    (a ``UserWarning`` with the count and the first files). ``skipped`` lists the ``"path: problem"`` of every
    sample skipped so far in the current (or last) epoch; ``last_skipped`` is the same list (older name)."""

    @property
    def skipped(self) -> list[str]:
        return self.__dict__.setdefault("_skip_reasons", [])

    @property
    def last_skipped(self) -> list[str]:
        return self.skipped

    def __iter__(self) -> Iterator:
        self.__dict__["_skip_reasons"] = []
        try:
            for batch in super().__iter__():
                if isinstance(batch, dict):
                    self.skipped.extend(batch.get("skipped", []))
                yield batch
        finally:  # also when the consumer stops at len(loader) and drops the iterator (Lightning's loops)
            self._report()

    def _report(self) -> None:
        if self.skipped:
            unique = sorted(set(self.skipped))
            shown = "\n  ".join(unique[:10])
            more = f"\n  ... and {len(unique) - 10} more" if len(unique) > 10 else ""
            warnings.warn(
                f"skipped {len(self.skipped)} bad samples this epoch:\n  {shown}{more}", stacklevel=3
            )

"""Photos and their landmarks: which files are photos, and where each photo's landmark file is.

A photo ``DIR/NAME.jpg`` (``.jpg .jpeg .png .bmp .webp``, any case) takes the first landmark file found of

1. ``DIR/NAME.pts`` (iBUG, 68 points), ``DIR/NAME.txt`` (68 or 5 lines ``x y``), ``DIR/NAME.mat``
   (AFLW2000-3D / 300W-LP: ``pt3d_68``, ``pts`` ...; :func:`facezoo.data.read_landmark_file`),
2. the same names under ``DIR/detections/`` (Deep3DFace's examples) and ``DIR/landmarks/``,

else the detector, when one is given (:class:`~facezoo.photos.detector.DlibLandmarkDetector`); else an error
naming the photo, the places looked in and the detector extra. Landmarks are in the photo's pixels.

Example:
    >>> import tempfile; from pathlib import Path
    >>> d = Path(tempfile.mkdtemp()); (d / "detections").mkdir()
    >>> _ = (d / "a.jpg").write_bytes(b""); _ = (d / "detections" / "a.txt").write_text("1 2\\n" * 5)
    >>> find_landmark_file(d / "a.jpg").relative_to(d).as_posix()
    'detections/a.txt'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["PHOTO_SUFFIXES", "Photo", "find_photos", "find_landmark_file", "load_photos"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LANDMARK_SUFFIXES = (".pts", ".txt", ".mat")
LANDMARK_FOLDERS = ("", "detections", "landmarks")


@dataclass
class Photo:
    """One photo: ``path``, ``image [3,H,W]`` in [0, 1], ``landmarks [68|5,2]`` (photo pixels), ``source``
    (the landmark file, or ``"detector:<name>"``)."""

    path: Path
    image: Tensor
    landmarks: Tensor
    source: str

    @property
    def stem(self) -> str:
        return self.path.stem


def find_photos(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The photos named by ``inputs`` (files, or folders whose photo files are taken, sorted; not recursive).

    Raises:
        FileNotFoundError: an input does not exist, or nothing in the inputs is a photo.
        ValueError: a file given by name is not a photo, or two photos share a file stem (their exports would
            overwrite each other).
    """
    photos: list[Path] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            photos += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in PHOTO_SUFFIXES)
        elif p.is_file():
            if p.suffix.lower() not in PHOTO_SUFFIXES:
                raise ValueError(f"{p}: not a photo (expected one of {', '.join(PHOTO_SUFFIXES)})")
            photos.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such photo or folder")
    if not photos:
        raise FileNotFoundError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    seen: dict[str, Path] = {}
    for p in photos:
        if p.stem in seen and seen[p.stem] != p:
            raise ValueError(
                f"{p} and {seen[p.stem]} have the same name {p.stem!r}: their exports would collide"
            )
        seen[p.stem] = p
    return list(dict.fromkeys(photos))


def find_landmark_file(photo: str | os.PathLike) -> Path | None:
    """The landmark file of ``photo`` (module docstring), or ``None``."""
    photo = Path(photo)
    for folder in LANDMARK_FOLDERS:
        for suffix in LANDMARK_SUFFIXES:
            f = photo.parent / folder / (photo.stem + suffix)
            if f.is_file():
                return f
    return None


def load_photos(paths: Sequence[Path], detector=None) -> list[Photo]:
    """Read the photos and their landmarks (files beside them, else ``detector``), in order."""
    from facezoo.data.io import load_image
    from facezoo.data.landmarks import read_landmark_file

    out = []
    for path in paths:
        image = load_image(path)
        lm_file = find_landmark_file(path)
        if lm_file is not None:
            points = read_landmark_file(lm_file, expected=(68, 5))
            source = str(lm_file)
        elif detector is not None:
            from facezoo.data.io import BadSampleError

            try:
                points = detector(image)
            except BadSampleError as err:
                raise BadSampleError(path, err.problem) from None
            source = f"detector:{detector.name}"
        else:
            from facezoo.photos.detector import DETECTOR_EXTRA

            places = ", ".join(
                f"{(Path(f) / path.stem).as_posix()}{{.pts,.txt,.mat}}" for f in LANDMARK_FOLDERS
            )
            raise FileNotFoundError(
                f"{path}: no landmark file beside it (looked for {places} in {path.parent}); give one, or "
                f"detect landmarks with --detector dlib (pip install 'facezoo[{DETECTOR_EXTRA}]')"
            )
        out.append(Photo(path, image, torch.as_tensor(np.asarray(points), dtype=torch.float64), source))
    return out

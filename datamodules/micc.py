"""MICC Florence 2D/3D faces (evaluation): per-subject ground-truth scans and video frames.

Layout: ``<root>/subject_NN/Model/frontal1/obj/*.obj`` (scans, mm) and videos under
``<root>/subject_NN/Video/{Indoor-Cooperative,PTZ-Indoor,PTZ-Outdoor}/``. Frames are images in
``<frames_root>/subject_NN/<video type>/*.jpg|png`` (default ``frames_root = <root>/frames``), extracted by
``facezoo prepare micc`` (needs a video decoder: PyAV) or by the user (e.g. ``ffmpeg -i video
frame%04d.jpg``).

Frames are cropped with Deep3DFace's 5-point alignment when a landmark file sits beside them (see
:func:`~facezoo.datamodules.image_folder.find_landmark_file`), else as the central square. ``group="frame"``
yields one sample per frame; ``group="subject"`` stacks ``frames_per_subject`` evenly spaced frames of a
subject and video type (``image [V,3,H,W]``; a video with fewer frames repeats some), the setting of
MVF-Net/Deep3DFace's pooled evaluation. Every sample has ``identity`` (subject number), ``view`` (video-type
index), ``scan`` (path of the subject's first scan) and ``path``. ``annotations`` (the shared
``micc/annotations.json``) adds the four annotated scan vertices per subject
(:attr:`MICCDataset.scan_landmarks`).

``facezoo test`` on this datamodule runs the ``"micc"`` protocol
(:class:`facezoo.methods.protocols.MICCProtocol`): one shape per subject and video type (the neutral
identity shape averaged over the frames, by default), scan RMSE after scaled ICP, a table per video type.
The protocol options are init arguments here (``eval_shape``, ``crop_radius``, ``forehead_cut``,
``exclude_subjects``) so that a data overlay sets them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from facezoo.data.io import IMAGE_SUFFIXES, FaceDataset, OnBadSample, check_root

from ._base import FaceDataModule, batch_keys
from .image_folder import load_face_crop

VIDEO_TYPES = ("Indoor-Cooperative", "PTZ-Indoor", "PTZ-Outdoor")
_SUBJECT = re.compile(r"^subject_0*(\d+)$")


def read_micc_annotations(path: str | Path) -> dict[int, dict]:
    """``annotations.json`` -> ``{subject: {"frame": path, "correspondences": {name: vertex_id}}}`` (paths
    resolved against the file's folder; ``correspondences.txt`` lines are ``name vertex_id``)."""
    path = Path(path)
    base = path.parent
    out = {}
    try:
        cases = json.loads(path.read_text())["cases"]
        cases = [(c["correspondences"], c["frame"]) for c in cases]
    except (OSError, ValueError, KeyError, TypeError) as err:  # missing, not JSON, or another layout
        raise ValueError(
            f"{path}: not a MICC annotations file ({type(err).__name__}: {err}); expected "
            '{"cases": [{"correspondences": ..., "frame": ...}, ...]}'
        ) from err
    for corr_name, frame in cases:
        corr_path = base / corr_name
        m = _SUBJECT.match(corr_path.parent.name)
        if m is None:
            raise ValueError(f"{path}: cannot read the subject from {corr_name!r}")
        corr = {}
        try:
            lines = corr_path.read_text().split("\n")
        except OSError as err:
            raise FileNotFoundError(
                f"{corr_path}: correspondences file named in {path} is unreadable"
            ) from err
        for k, line in enumerate(lines):
            if line.strip():
                tok = line.split()
                if len(tok) != 2 or not tok[1].isdigit():
                    raise ValueError(
                        f"{corr_path}: line {k + 1}: expected 'name vertex_id', got {line.strip()!r}"
                    )
                corr[tok[0]] = int(tok[1])
        out[int(m[1])] = {"frame": base / frame, "correspondences": corr}
    return out


class MICCDataset(FaceDataset):
    """MICC frames (see the module docstring)."""

    def __init__(
        self,
        root,
        frames_root=None,
        video_types=VIDEO_TYPES,
        group: str = "frame",
        frames_per_subject: int = 8,
        annotations=None,
        image_size: int = 224,
        on_bad_sample: OnBadSample = "error",
    ):
        super().__init__(on_bad_sample)
        if group == "subject" and (not isinstance(frames_per_subject, int) or frames_per_subject < 1):
            raise ValueError(f"frames_per_subject: expected a positive integer, got {frames_per_subject!r}")
        root = check_root(root, "MICC Florence")
        frames = check_root(
            frames_root or root / "frames", "MICC frames (run `facezoo prepare micc` or extract them)"
        )
        self.scans: dict[int, Path] = {}
        for sdir in sorted(root.glob("subject_*")):
            m = _SUBJECT.match(sdir.name)
            objs = sorted((sdir / "Model").glob("*/obj/*.obj")) if m else []
            if objs:
                self.scans[int(m[1])] = objs[0]
        groups: list[tuple[int, int, list[Path]]] = []
        for sdir in sorted(frames.glob("subject_*")):
            m = _SUBJECT.match(sdir.name)
            if m is None:
                continue
            for vt_index, vt in enumerate(video_types):
                files = sorted(p for p in (sdir / vt).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
                if files:
                    groups.append((int(m[1]), vt_index, files))
        if not groups:
            raise FileNotFoundError(f"no frames under {frames}/subject_NN/{{{','.join(video_types)}}}/")
        if group == "frame":
            self.items = [(s, v, [f]) for s, v, files in groups for f in files]
        elif group == "subject":
            self.items = []
            for s, v, files in groups:
                # always frames_per_subject images (a video with fewer frames repeats some), so that
                # sets of different videos stack into one batch
                idx = torch.linspace(0, len(files) - 1, frames_per_subject).round().long().tolist()
                self.items.append((s, v, [files[i] for i in idx]))
        else:
            raise ValueError(f"group must be 'frame' or 'subject', got {group!r}")
        self.scan_landmarks = (
            {s: a["correspondences"] for s, a in read_micc_annotations(annotations).items()}
            if annotations
            else {}
        )
        self.image_size, self.group, self.video_types = image_size, group, tuple(video_types)

    def _frame(self, path: Path) -> dict:
        return load_face_crop(path, self.image_size)

    def load(self, index: int) -> dict:
        subject, vt, files = self.items[index]
        frames = [self._frame(f) for f in files]
        if self.group == "frame":
            sample = frames[0]
        else:
            sample = {k: torch.stack([f[k] for f in frames]) for k in ("image", "affine")}
        sample.update(
            identity=subject, view=vt, scan=str(self.scans.get(subject, "")), path="|".join(map(str, files))
        )
        return sample


class MICC(FaceDataModule):
    """MICC Florence evaluation datamodule (``test``/``predict``; ``val`` = ``test``).

    Its own arguments are below; the others are :class:`FaceDataModule`'s (an evaluation set: no ``p_flip``,
    ``p_color``). With ``group="frame"``, ``landmarks5`` is partial: only frames with a landmark file beside
    them have it.

    Args:
        frames_root: folder of the extracted frames (default ``<root>/frames``).
        video_types: the video types to read (default: all three).
        group: ``"frame"`` (one sample per frame) or ``"subject"`` (``frames_per_subject`` frames stacked).
        frames_per_subject: frames per sample with ``group="subject"``.
        annotations: the shared ``micc/annotations.json`` (four annotated scan vertices per subject).
        batch_size: samples per batch (per device).
        eval_shape: ``"neutral"`` (identity shape without expression) or ``"full"`` (the reconstructed
            vertices), see :mod:`facezoo.methods.protocols.micc`.
        pooling: ``"sequence"`` (one RMSE of the sequence's average shape; Deng et al., MVF-Net) or
            ``"frame"`` (one RMSE per frame, then their mean; SIR's Table V).
        crop_radius: mm around the nose tip kept of the scan.
        forehead_cut: mm above the nose tip cut off (None = no cut).
        exclude_subjects: subjects left out (e.g. ``[2, 27]`` as MVF-Net).
    """

    splits = ("test",)
    protocol = "micc"
    partial_keys = ("landmarks5",)

    def __init__(
        self,
        frames_root: str | None = None,
        video_types: list[str] | None = None,
        group: str = "frame",
        frames_per_subject: int = 8,
        annotations: str | None = None,
        batch_size: int = 8,
        eval_shape: str = "neutral",
        pooling: str = "sequence",
        crop_radius: float = 95.0,
        forehead_cut: float | None = None,
        exclude_subjects: list[int] | None = None,
        **kwargs,
    ):
        super().__init__(batch_size=batch_size, **kwargs)
        if eval_shape not in ("neutral", "full"):
            raise ValueError(f"eval_shape: expected 'neutral' or 'full', got {eval_shape!r}")
        if pooling not in ("sequence", "frame"):
            raise ValueError(f"pooling: expected 'sequence' or 'frame', got {pooling!r}")
        self.protocol_options = dict(
            eval_shape=eval_shape,
            pooling=pooling,
            crop_radius=crop_radius,
            forehead_cut=forehead_cut,
            exclude_subjects=list(exclude_subjects or []),
        )
        self.options = dict(
            frames_root=frames_root,
            video_types=tuple(video_types or VIDEO_TYPES),
            group=group,
            frames_per_subject=frames_per_subject,
            annotations=annotations,
        )

    @property
    def provides(self) -> dict[str, tuple[str, ...]]:  # type: ignore[override]
        """Batch keys; stacked frames (``group="subject"``) keep only ``image``, ``affine`` of the crops."""
        crop = ("image", "affine", "landmarks5") if self.options["group"] == "frame" else ("image", "affine")
        return batch_keys(*crop, "identity", "view", "scan", "path", "index")

    def raw_dataset(self, split: str, train: bool) -> MICCDataset:
        return MICCDataset(
            self.root, image_size=self.image_size, on_bad_sample=self.on_bad_sample, **self.options
        )

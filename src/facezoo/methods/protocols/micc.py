"""MICC Florence protocol runner: one shape per (subject, video type), scan RMSE (Deng et al. 2019, Table 2).

Which shape, and how frames are pooled (the papers differ; our choices, per the sources):

* **Neutral identity shape** ``morphable(id, exp=0)`` by default (``eval_shape="neutral"``): the MICC scans
  are neutral (Deng et al. §6.1.1: "a ground truth scan in neutral expression"), and SIR (§IV-B)
  "reconstruct[s] only the shape of the face without expressions". ``eval_shape="full"`` uses the full
  reconstructed vertices (identity + expression) instead.
* **Average of the per-frame vertices** of a sequence (subject x video type), then one RMSE per sequence:
  Deng et al. "evaluate the error with the average shape from a sequence" (MVF-Net's "+pool" setting is the
  same average over a triplet). With ``group="subject"`` image sets, every image of a set counts as one frame.
  ``pooling="frame"`` instead computes one RMSE per frame and averages those (SIR §IV-B, Table V: per-frame
  errors of the shape only; choose the frames with the datamodule, e.g. ``video_types: [PTZ-Outdoor]``).
  (Genova et al. average embeddings: not implemented.)
* **RMSE**: :func:`facezoo.metrics.mesh_rmse` (95 mm crop around the nose tip, scaled ICP, point-to-surface
  distance from every cropped scan point), mean ± population std over the sequences of a video type
  (Deng's Cooperative / Indoor / Outdoor columns) and over all sequences. ``exclude_subjects`` drops subjects
  (MVF-Net leaves out 2 and 27 for flawed scans; Deng uses all 53).
* **Nose tip** (:func:`micc_nose_tip`): with MICC's four annotated scan vertices (``annotations``), the scan
  point nearest the viewer, along the face's forward axis built from the annotations, within 30 mm of the
  annotated ``nose_base``; without annotations the scan point of maximum z within 30 mm (in x, y) of the
  scan's x-y median (the scans are frontal, +z toward the viewer, in facezoo's frame).
* **Initial alignment**: the four annotations against the prediction's iBUG-68 points
  (:data:`MICC_LANDMARKS`) when both exist, else :func:`mesh_rmse`'s centroid/scale start.

DDP: per-sequence vertex sums and frame counts are :class:`SequenceShapes` states reduced by sum, so that
ranks holding parts of a sequence add up to the single-process average (DistributedSampler's padding
repeats are removed exactly, see the class). The reduction happens in ``compute`` on every rank; the scan
loading and ICP then run **once, on rank 0**, and the numbers are broadcast to the other ranks. With
``pooling="frame"`` each rank computes its frames' RMSEs as they come (no shape is kept) and the rows are
gathered, padding repeats dropped by dataset index.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from facezoo.methods.protocols.base import (
    ProtocolResult,
    ProtocolRunner,
    broadcast_from_zero,
    distributed_rank,
    gather_lists,
    neutral_shape,
)
from facezoo.methods.views import unflatten_views
from facezoo.metrics.mesh_rmse import mesh_rmse
from facezoo.metrics.report import format_table

#: MICC annotation name -> iBUG-68 indices whose mean is the corresponding model point (0-based): the
#: subject's right/left inner eye corners (39, 42), the nose base (subnasale, 33) and the lips' centre (mean
#: of the inner-lip midpoints 62, 66).
MICC_LANDMARKS: dict[str, tuple[int, ...]] = {
    "right_eye_lacrimal": (39,),
    "left_eye_lacrimal": (42,),
    "nose_base": (33,),
    "lips_central": (62, 66),
}


def micc_nose_tip(
    points: np.ndarray, landmarks: Mapping[str, np.ndarray] | None = None, radius: float = 30.0
) -> np.ndarray:
    """The nose tip ``[3]`` of a scan ``points [N,3]`` (mm), for the 95 mm crop.

    With ``landmarks`` (MICC's annotations: ``right_eye_lacrimal``, ``left_eye_lacrimal``, ``nose_base``,
    ``lips_central`` -> ``[3]``) the forward axis is ``x × y`` with ``x`` = right->left eye and ``y`` =
    lips->eye midpoint (facezoo's right-handed frame, +z toward the viewer), and the tip is the point within
    ``radius`` mm of ``nose_base`` furthest along it; this holds whatever frame the scan is in and whether the
    annotation marks the tip or the base of the nose. Without them: the point of maximum z among those
    within ``radius`` mm (in x, y) of the scan's x-y median.

    Example:
        >>> g = np.stack(np.meshgrid(np.linspace(-60, 60, 41), np.linspace(-60, 60, 41)), -1).reshape(-1, 2)
        >>> face = np.c_[g, 30 * np.exp(-(g**2).sum(1) / 400)]
        >>> micc_nose_tip(face).round(3).tolist()
        [0.0, 0.0, 30.0]
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise ValueError(f"points: expected [N,3] with N > 0, got {p.shape}")
    need = ("right_eye_lacrimal", "left_eye_lacrimal", "nose_base", "lips_central")
    if landmarks is not None and all(k in landmarks for k in need):
        lm = {k: np.asarray(landmarks[k], dtype=np.float64) for k in need}
        x = lm["left_eye_lacrimal"] - lm["right_eye_lacrimal"]
        y = (lm["left_eye_lacrimal"] + lm["right_eye_lacrimal"]) / 2 - lm["lips_central"]
        forward = np.cross(x, y)
        forward /= max(np.linalg.norm(forward), 1e-12)
        near = np.linalg.norm(p - lm["nose_base"], axis=1) <= radius
        cand = p[near] if near.any() else lm["nose_base"][None]
        return cand[np.argmax(cand @ forward)]
    centre = np.median(p[:, :2], axis=0)
    near = np.linalg.norm(p[:, :2] - centre, axis=1) <= radius
    cand = p[near] if near.any() else p
    return cand[np.argmax(cand[:, 2])]


class SequenceShapes(Metric):
    """Per-sequence sums of predicted vertices and frame counts (sum states: exact under DDP).

    ``update(vertex_sums [B,V,3], frames [B], slots [B] int, indices [B] int)``: each dataset item (a frame,
    or an image set) adds the sum of its images' vertices and its number of images to its sequence ``slot``.
    ``compute()`` -> ``(mean [S,V,3] float64, frames [S] float64)`` (mean 0 where a slot got no frame).

    Lightning's evaluation ``DistributedSampler`` (no shuffling) pads the last round with the dataset's first
    items, fewer than ``world_size`` of them, so a few items are seen twice on different ranks. Items with
    ``index < n_head`` (give ``n_head`` = world size) therefore go to separate per-item sum states with a
    seen-count, and count once whatever the number of copies; all other items go straight to the sums.

    Example:
        >>> m = SequenceShapes(n_slots=2, n_vertices=1)
        >>> m.update(torch.ones(3, 1, 3), torch.ones(3), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]))
        >>> m.compute()[1].tolist()
        [2.0, 1.0]
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, n_slots: int, n_vertices: int, n_head: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if n_slots < 1 or n_vertices < 1 or n_head < 1:
            raise ValueError(f"n_slots, n_vertices, n_head: expected >= 1, got {n_slots, n_vertices, n_head}")
        f64 = torch.float64
        self.n_slots, self.n_vertices, self.n_head = n_slots, n_vertices, n_head
        self.add_state("total", torch.zeros(n_slots, n_vertices, 3, dtype=f64), dist_reduce_fx="sum")
        self.add_state("frames", torch.zeros(n_slots, dtype=f64), dist_reduce_fx="sum")
        self.add_state("head_total", torch.zeros(n_head, n_vertices, 3, dtype=f64), dist_reduce_fx="sum")
        self.add_state("head_frames", torch.zeros(n_head, dtype=f64), dist_reduce_fx="sum")
        self.add_state("head_slot", torch.zeros(n_head, dtype=f64), dist_reduce_fx="sum")
        self.add_state("head_seen", torch.zeros(n_head, dtype=f64), dist_reduce_fx="sum")

    def update(self, vertex_sums: Tensor, frames: Tensor, slots: Tensor, indices: Tensor) -> None:
        if vertex_sums.ndim != 3 or vertex_sums.shape[1:] != (self.n_vertices, 3):
            raise ValueError(f"vertex_sums: expected [B,{self.n_vertices},3], got {tuple(vertex_sums.shape)}")
        b = vertex_sums.shape[0]
        dev = self.total.device
        frames = torch.as_tensor(frames, device=dev).to(torch.float64).reshape(-1)
        slots = torch.as_tensor(slots, device=dev).long().reshape(-1)
        indices = torch.as_tensor(indices, device=dev).long().reshape(-1)
        for name, t in (("frames", frames), ("slots", slots), ("indices", indices)):
            if t.numel() != b:
                raise ValueError(f"{name}: expected [{b}], got {t.numel()} values")
        if (slots < 0).any() or (slots >= self.n_slots).any():
            raise ValueError(f"slots: expected values in [0, {self.n_slots}), got {slots.tolist()}")
        v = vertex_sums.detach().to(dev, torch.float64)
        head = indices < self.n_head
        rest = ~head
        self.total.index_add_(0, slots[rest], v[rest])
        self.frames.index_add_(0, slots[rest], frames[rest])
        h = indices[head]
        self.head_total.index_add_(0, h, v[head])
        self.head_frames.index_add_(0, h, frames[head])
        self.head_slot.index_add_(0, h, slots[head].to(torch.float64))
        self.head_seen.index_add_(0, h, torch.ones_like(frames[head]))

    def compute(self) -> tuple[Tensor, Tensor]:
        total, frames = self.total.clone(), self.frames.clone()
        seen = self.head_seen > 0
        if seen.any():
            n = self.head_seen[seen]
            slot = (self.head_slot[seen] / n).round().long()  # every copy of an item has the same slot
            total.index_add_(0, slot, self.head_total[seen] / n[:, None, None])
            frames.index_add_(0, slot, self.head_frames[seen] / n)
        return total / frames.clamp_min(1)[:, None, None], frames


def _vt_key(name: str) -> str:
    return name.lower().replace("-", "_")


class MICCProtocol(ProtocolRunner):
    """MICC Florence scan RMSE per video type (module docstring). Needs the :class:`~facezoo.datamodules.MICC`
    datamodule in its raw layout (the scans are read from ``root``)."""

    name: ClassVar[str] = "micc"
    batch_keys: ClassVar[tuple[str, ...]] = ("identity", "view", "index")

    def __init__(self, method, datamodule=None) -> None:
        super().__init__(method, datamodule)
        from facezoo.datamodules.micc import MICCDataset

        ds = datamodule.dataset("test") if datamodule is not None else None
        if not isinstance(ds, MICCDataset):
            raise ValueError(
                "the 'micc' protocol needs the MICC datamodule with its raw layout (root=...: the scans are "
                f"read from it); got {type(datamodule).__name__} with dataset {type(ds).__name__}"
            )
        self.dataset = ds
        opts = dict(getattr(datamodule, "protocol_options", {}) or {})
        self.eval_shape = opts.get("eval_shape", "neutral")
        if self.eval_shape not in ("neutral", "full"):
            raise ValueError(f"eval_shape: expected 'neutral' or 'full', got {self.eval_shape!r}")
        self.pooling = opts.get("pooling", "sequence")
        if self.pooling not in ("sequence", "frame"):
            raise ValueError(f"pooling: expected 'sequence' or 'frame', got {self.pooling!r}")
        self.frame_rows: list[dict[str, Any]] = []
        self._scans: dict[int, tuple] = {}
        self.rmse_options = {k: opts[k] for k in ("crop_radius", "forehead_cut") if k in opts}
        self.exclude = set(opts.get("exclude_subjects") or ())
        no_scan = sorted({s for s, _, _ in ds.items} - set(ds.scans) - self.exclude)
        if no_scan:  # say so now, not after the whole test loop
            raise FileNotFoundError(
                f"MICC: no ground-truth scan (<root>/subject_NN/Model/*/obj/*.obj) for subject(s) {no_scan}; "
                "the 'micc' protocol needs them (or list those subjects in exclude_subjects)"
            )
        self.video_types = tuple(getattr(ds, "video_types", ()))
        self.keys = sorted({(s, v) for s, v, _ in ds.items})
        self.slot = {k: i for i, k in enumerate(self.keys)}
        _, world = distributed_rank()
        self.shapes = SequenceShapes(len(self.keys), method.morphable.n_vertices, n_head=world).to(
            method.device
        )

    def update(self, method, batch: Mapping[str, Any]) -> None:
        self.check_batch(method, batch)
        method.check_batch(batch, "predict")
        rec = method.reconstruct(batch)
        shape = neutral_shape(method, rec) if self.eval_shape == "neutral" else rec.vertices.detach()
        ident = torch.as_tensor(batch["identity"]).reshape(-1).tolist()
        view = torch.as_tensor(batch["view"]).reshape(-1).tolist()
        b, m = len(ident), rec.views  # m images per sample (group="subject" sets)
        if shape.shape[0] != b * m:
            raise ValueError(f"{shape.shape[0]} reconstructed shapes for {b} samples of {m} view(s)")
        if shape.shape[1] != self.shapes.n_vertices:
            raise ValueError(
                f"shapes have {shape.shape[1]} vertices, expected the model's {self.shapes.n_vertices}"
            )
        try:
            slots = [self.slot[(int(s), int(v))] for s, v in zip(ident, view)]
        except KeyError as err:
            raise ValueError(f"(subject, video type) {err.args[0]} is not in the MICC dataset") from None
        if self.pooling == "frame":  # one RMSE per image now; nothing kept but the rows
            index = torch.as_tensor(batch["index"]).reshape(-1).tolist()
            for row, v in enumerate(unflatten_views(shape, m).detach().cpu()):
                subject, vt = self.keys[slots[row]]
                if subject in self.exclude:
                    continue
                for view in range(m):
                    rmse = self._sequence_rmse(method, v[view], subject)
                    name = self._video_name(vt)
                    self.frame_rows.append({"subject": subject, "video": name, "frames": 1, "rmse": rmse,
                                            "index": int(index[row]), "view": view})  # fmt: skip
            return
        sums = unflatten_views(shape, m).sum(1)
        self.shapes.update(sums, torch.full((b,), float(m)), torch.tensor(slots), batch["index"])

    def _scan(self, subject: int) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        from facezoo.morphable.ict import read_obj

        path = self.dataset.scans.get(subject)
        if path is None:
            raise FileNotFoundError(f"MICC subject {subject}: no scan under subject_*/Model/*/obj/*.obj")
        points, _ = read_obj(Path(path), faces=False)
        corr = self.dataset.scan_landmarks.get(subject)
        if corr and all(k in corr and 0 <= corr[k] < len(points) for k in MICC_LANDMARKS):
            return points, {k: points[corr[k]] for k in MICC_LANDMARKS}
        return points, None

    def _video_name(self, vt: int) -> str:
        return self.video_types[vt] if vt < len(self.video_types) else str(vt)

    def _sequence_rmse(self, method, v: Tensor, subject: int) -> float:
        """:func:`mesh_rmse` of the shape ``v [N,3]`` against ``subject``'s scan (scans read once)."""
        model = method.morphable
        if subject not in self._scans:
            self._scans[subject] = self._scan(subject)
        points, lm = self._scans[subject]
        v = v.cpu()
        pred_lm = target_lm = None
        if lm is not None and v.shape[0] == model.n_vertices:
            lm68 = model.landmarks(v[None].to(model.mean))[0].double().cpu()
            pred_lm = torch.stack([lm68[list(i)].mean(0) for i in MICC_LANDMARKS.values()])
            target_lm = np.stack([lm[k] for k in MICC_LANDMARKS])
        rmse = mesh_rmse(
            v, model.triangles.cpu(), points, micc_nose_tip(points, lm),
            pred_landmarks=pred_lm, target_landmarks=target_lm, **self.rmse_options,
        )  # fmt: skip
        return float(rmse)

    def _rmse(self, method, mean: Tensor, frames: Tensor) -> list[dict[str, Any]]:
        import sys

        from tqdm import tqdm

        rows = []
        keys = tqdm(self.keys, desc="MICC scan RMSE", unit="seq", file=sys.stderr, leave=False)
        for slot, (subject, vt) in enumerate(keys):
            if frames[slot] <= 0 or subject in self.exclude:
                continue
            rmse = self._sequence_rmse(method, mean[slot], subject)
            rows.append({"subject": subject, "video": self._video_name(vt), "frames": int(frames[slot]),
                         "rmse": rmse})  # fmt: skip
        return rows

    def _frame_rows(self) -> list[dict[str, Any]]:
        """Every rank's per-frame rows, each (dataset index, view) once (DistributedSampler pads by repeating
        items)."""
        unique = {(r["index"], r["view"]): r for r in gather_lists(self.frame_rows)}
        return [unique[k] for k in sorted(unique)]

    def compute(self, method) -> ProtocolResult:
        if self.pooling == "frame":
            rows = self._frame_rows()  # collective: every rank gathers
        else:
            mean, frames = self.shapes.compute()  # collective: every rank takes part in the reduction
            rank, _ = distributed_rank()
            rows = self._rmse(method, mean, frames) if rank == 0 else None
            rows = broadcast_from_zero(rows)
        metrics: dict[str, float] = {}
        table_rows: dict[str, dict[str, Any]] = {}
        groups = [(vt, [r["rmse"] for r in rows if r["video"] == vt]) for vt in self.video_types]
        groups.append(("all", [r["rmse"] for r in rows]))
        for name, vals in groups:
            if not vals:
                continue
            mine = [r for r in rows if name == "all" or r["video"] == name]
            a = np.asarray(vals)
            suffix = "" if name == "all" else f"_{_vt_key(name)}"
            metrics[f"rmse{suffix}"], metrics[f"rmse{suffix}_std"] = float(a.mean()), float(a.std())
            table_rows[name] = {
                "RMSE (mm)": f"{a.mean():.3f} ± {a.std():.3f}",
                "sequences": len({(r["subject"], r["video"]) for r in mine}),
                "frames": sum(r["frames"] for r in mine),
            }  # fmt: skip
        table = format_table(table_rows, row_header="video") if table_rows else ""
        title = (
            f"test results: MICC Florence RMSE, {self.eval_shape} shape "
            f"{'per frame' if self.pooling == 'frame' else 'averaged per sequence'} "
            f"({type(method).__name__})"
        )
        extra = {"frames" if self.pooling == "frame" else "sequences": rows, "eval_shape": self.eval_shape,
                 "pooling": self.pooling}  # fmt: skip
        return ProtocolResult(metrics, table, title, extra)

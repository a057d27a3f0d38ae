"""`facezoo test` on MICC Florence: per-sequence shapes, scan RMSE per video type, DDP-exact accumulation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from facezoo.datamodules import MICC
from PIL import Image

from facezoo.cli import main
from facezoo.methods.base import build_morphable
from facezoo.methods.protocols import MICC_LANDMARKS, SequenceShapes, micc_nose_tip

MODEL = "procedural:600"
OFFSET = 1.0  # mm, scan 2's off-surface points


def _rotation_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def _write_obj(path, vertices, triangles) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in triangles]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def micc_root(tmp_path_factory):
    """Two subjects. Scan 1: the procedural mean face moved by a rigid transform (a mean-face prediction
    has RMSE ~0); scan 2: the mean face's vertices plus, for K triangles of the cheeks, two points at
    +-OFFSET mm along the triangle's normal from its centroid. Against a mean-face prediction every vertex
    is at distance 0 and every extra point at OFFSET (the pairs are symmetric about the surface, so they do
    not move the alignment), hence the closed form RMSE = OFFSET * sqrt(2K / (N + 2K)) with N the vertices
    in the 95 mm crop. Frames: subject 1 in two video types (2 + 1 frames), subject 2 in one (1 frame);
    annotations for subject 1 only."""
    root = tmp_path_factory.mktemp("micc")
    model = build_morphable(MODEL)
    mean = model.mean.double().numpy()
    tri = model.triangles.numpy()
    scan1 = mean @ _rotation_y(12.0).T + np.array([5.0, -3.0, 20.0])
    # the crop centre: the scan's nose tip found as the protocol documents it (max z near the x-y median)
    near = np.linalg.norm(mean[:, :2] - np.median(mean[:, :2], 0), axis=1) <= 30.0
    tip = mean[near][np.argmax(mean[near][:, 2])]
    a, b, c = (mean[tri[:, k]] for k in range(3))
    centroid = (a + b + c) / 3
    normal = np.cross(b - a, c - a)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    dist = np.linalg.norm(centroid - tip, axis=1)
    flat = (normal[:, 2] > 0.9) & (dist > 35.0) & (dist < 60.0)  # frontal cheek triangles, away from the tip
    chosen = np.flatnonzero(flat)[::2]
    scan2 = np.concatenate([mean, centroid[chosen] + OFFSET * normal[chosen],
                            centroid[chosen] - OFFSET * normal[chosen]])  # fmt: skip
    n_crop = int((np.linalg.norm(mean - tip, axis=1) <= 95.0).sum())
    expected2 = OFFSET * math.sqrt(2 * len(chosen) / (n_crop + 2 * len(chosen)))
    for s, scan in ((1, scan1), (2, scan2)):
        _write_obj(root / f"subject_{s:02d}" / "Model" / "frontal1" / "obj" / "scan.obj", scan, tri)
    rng = np.random.default_rng(0)
    for s, vt, n in ((1, "Indoor-Cooperative", 2), (1, "PTZ-Outdoor", 1), (2, "Indoor-Cooperative", 1)):
        d = root / "frames" / f"subject_{s:02d}" / vt
        d.mkdir(parents=True)
        for k in range(n):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"frame{k:04d}.png")
    lm = model.landmarks68.tolist()
    corr = {"right_eye_lacrimal": lm[39], "left_eye_lacrimal": lm[42], "nose_base": lm[33],
            "lips_central": lm[62]}  # fmt: skip
    case = root / "annotations" / "cases" / "subject_1"
    case.mkdir(parents=True)
    (case / "correspondences.txt").write_text("".join(f"{k} {v}\n" for k, v in corr.items()))
    (root / "annotations" / "annotations.json").write_text(
        json.dumps({"cases": [{"correspondences": "./cases/subject_1/correspondences.txt",
                               "frame": "./cases/subject_1/frame0001.jpg"}]})
    )  # fmt: skip
    assert len(chosen) >= 10 and expected2 > 0.1
    return root, {"rmse2": expected2}


@pytest.mark.parametrize("group", ["frame", "subject"])
def test_facezoo_test_on_micc_prints_table_and_writes_json(group, micc_root, tmp_path, capsys):
    """Frames one by one, or each video's frames as one image set (``[B,M,3,H,W]``): same sequences."""
    root, ref = micc_root
    main([
        "test", "--model=facezoo.methods.Deep3DFace", f"--model.morphable_model={MODEL}",
        "--model.backbone=resnet18", "--model.backbone_kwargs={width: 8}", "--model.image_size=48",
        "--data=facezoo.datamodules.MICC", f"--data.root={root}", "--data.image_size=48",
        "--data.batch_size=2", "--data.num_workers=0", f"--data.group={group}",
        "--data.frames_per_subject=2",
        f"--data.annotations={root / 'annotations' / 'annotations.json'}",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "MICC Florence RMSE" in out and "Indoor-Cooperative" in out and "PTZ-Outdoor" in out
    assert "PTZ-Indoor" not in out  # no frames of that type: no row
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["protocol"] == "micc" and results["eval_shape"] == "neutral"
    seq = {(r["subject"], r["video"]): r for r in results["sequences"]}
    assert sorted(seq) == [(1, "Indoor-Cooperative"), (1, "PTZ-Outdoor"), (2, "Indoor-Cooperative")]
    assert seq[(1, "Indoor-Cooperative")]["frames"] == 2
    # An untrained Deep3DFace regresses zero coefficients: the mean face. Against its rigidly moved copy
    # the aligned RMSE vanishes; against scan 2 it is the fixture's closed form.
    assert seq[(1, "Indoor-Cooperative")]["rmse"] < 1e-3 and seq[(1, "PTZ-Outdoor")]["rmse"] < 1e-3
    assert seq[(2, "Indoor-Cooperative")]["rmse"] == pytest.approx(ref["rmse2"], rel=0.01)
    m = results["metrics"]
    coop = [seq[(1, "Indoor-Cooperative")]["rmse"], seq[(2, "Indoor-Cooperative")]["rmse"]]
    assert m["rmse_indoor_cooperative"] == pytest.approx(np.mean(coop))
    assert m["rmse_indoor_cooperative_std"] == pytest.approx(np.std(coop))
    assert m["rmse"] == pytest.approx(np.mean([r["rmse"] for r in seq.values()]))


def test_frame_pooling_gives_one_rmse_per_frame_and_their_mean(micc_root, tmp_path, capsys):
    """SIR's per-frame protocol: every frame (every image of a set) is a row; the metrics average rows."""
    root, ref = micc_root
    main([
        "test", "--model=facezoo.methods.Deep3DFace", f"--model.morphable_model={MODEL}",
        "--model.backbone=resnet18", "--model.backbone_kwargs={width: 8}", "--model.image_size=48",
        "--data=facezoo.datamodules.MICC", f"--data.root={root}", "--data.image_size=48",
        "--data.batch_size=3", "--data.num_workers=0", "--data.pooling=frame",
        f"--data.annotations={root / 'annotations' / 'annotations.json'}",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ])  # fmt: skip
    assert "per frame" in capsys.readouterr().out
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["pooling"] == "frame" and "sequences" not in results
    frames = results["frames"]
    # the fixture's 2 + 1 + 1 frames, each once (batch 3 splits subject 1's Indoor-Cooperative video)
    assert sorted((r["subject"], r["video"]) for r in frames) == [
        (1, "Indoor-Cooperative"), (1, "Indoor-Cooperative"), (1, "PTZ-Outdoor"), (2, "Indoor-Cooperative")
    ]  # fmt: skip
    rmse = {(r["subject"], r["index"]): r["rmse"] for r in frames}
    assert all(v < 1e-3 for (s, _), v in rmse.items() if s == 1)
    assert [v for (s, _), v in rmse.items() if s == 2] == [pytest.approx(ref["rmse2"], rel=0.01)]
    coop = [r["rmse"] for r in frames if r["video"] == "Indoor-Cooperative"]
    assert results["metrics"]["rmse_indoor_cooperative"] == pytest.approx(
        np.mean(coop)
    )  # 3 frames, not 2 sequences
    assert results["metrics"]["rmse"] == pytest.approx(np.mean([r["rmse"] for r in frames]))


def test_nose_tip_from_annotations_or_max_z():
    g = np.stack(np.meshgrid(np.linspace(-60, 60, 61), np.linspace(-80, 80, 81)), -1).reshape(-1, 2)
    face = np.c_[g, 25 * np.exp(-((g - [0, -10]) ** 2).sum(1) / 300)]  # the tip at (0, -10, 25)
    face = np.r_[face, [[0.0, 75.0, 40.0]]]  # a far-away outlier (hair) nearer the viewer
    assert micc_nose_tip(face).tolist() == pytest.approx([0, -10, 25])
    # landmarks give the forward axis: rotate everything by 90 degrees about y, the tip is still found
    lm = {"right_eye_lacrimal": [-15, 20, 5.0], "left_eye_lacrimal": [15, 20, 5.0],
          "nose_base": [0, -5, 15.0], "lips_central": [0, -35, 5.0]}  # fmt: skip
    r = _rotation_y(90.0)
    tip = micc_nose_tip(face @ r.T, {k: np.array(v) @ r.T for k, v in lm.items()})
    assert tip == pytest.approx(np.array([0, -10, 25.0]) @ r.T)
    assert set(MICC_LANDMARKS) == set(lm)
    with pytest.raises(ValueError, match="points"):
        micc_nose_tip(np.zeros((0, 3)))


def test_sequence_shapes_averages_frames_and_removes_padding_repeats():
    m = SequenceShapes(n_slots=2, n_vertices=2, n_head=2)
    v = torch.arange(4 * 2 * 3, dtype=torch.float64).reshape(4, 2, 3)
    # items 0..3, item 0 seen twice (a DistributedSampler padding repeat); item 2 is a set of 3 images
    m.update(v[[0, 1]], torch.tensor([1.0, 1.0]), torch.tensor([0, 0]), torch.tensor([0, 1]))
    m.update(v[[2, 3, 0]], torch.tensor([3.0, 1.0, 1.0]), torch.tensor([1, 1, 0]), torch.tensor([2, 3, 0]))
    mean, frames = m.compute()
    assert frames.tolist() == [2.0, 4.0]
    assert torch.allclose(mean[0], (v[0] + v[1]) / 2) and torch.allclose(mean[1], (v[2] + v[3]) / 4)
    with pytest.raises(ValueError, match="slots"):
        m.update(v[:1], torch.ones(1), torch.tensor([2]), torch.tensor([5]))
    with pytest.raises(ValueError, match="vertex_sums"):
        m.update(torch.zeros(1, 3, 3), torch.ones(1), torch.tensor([0]), torch.tensor([5]))


def test_micc_protocol_needs_the_raw_layout(micc_root, tiny_method):
    root, _ = micc_root
    from facezoo.methods.protocols import MICCProtocol

    with pytest.raises(ValueError, match="raw layout"):
        MICCProtocol(tiny_method(), None)
    with pytest.raises(ValueError, match="eval_shape"):
        MICC(root=str(root), eval_shape="posed")


# -- DDP: two gloo processes, each with its DistributedSampler share, equal one process ------------------
N_ITEMS, N_SLOTS, N_V = 7, 3, 5  # 7 items on 2 ranks: the sampler pads rank 1 with item 0


def _data():
    g = torch.Generator().manual_seed(0)
    return {
        "v": torch.randn(N_ITEMS, N_V, 3, generator=g, dtype=torch.float64),
        "frames": torch.tensor([1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0]),
        "slots": torch.tensor([0, 0, 1, 2, 1, 2, 0]),
    }


def _accumulate(data, rank: int, world: int):
    per = -(-N_ITEMS // world)
    padded = torch.arange(per * world) % N_ITEMS  # DistributedSampler(shuffle=False) pads by wrapping
    idx = padded[rank::world]
    m = SequenceShapes(N_SLOTS, N_V, n_head=world)
    for chunk in idx.split(2):
        m.update(data["v"][chunk], data["frames"][chunk], data["slots"][chunk], chunk)
    return m.compute()


def test_sequence_shapes_two_gloo_processes_equal_one(gloo_run):
    data = _data()
    mean1, frames1 = _accumulate(data, 0, 1)
    for mean, frames in gloo_run(_accumulate, data, world=2, deadline_s=60.0):
        assert torch.equal(frames, frames1)
        assert torch.allclose(mean, mean1, rtol=0, atol=1e-12)
    # a brute-force reference: weighted mean of each slot's items (the padding repeat counted once)
    for s in range(N_SLOTS):
        k = data["slots"] == s
        ref = data["v"][k].sum(0) / data["frames"][k].sum()
        assert torch.allclose(mean1[s], ref)
    alone, _ = _accumulate(data, 0, 2)  # one rank alone sees something else
    assert not torch.allclose(alone, mean1)


def test_real_micc_annotations_name_the_protocol_landmarks(shared_data):
    """The shared annotations (hyperparams-free-3D-losses) use exactly the names MICC_LANDMARKS maps."""
    from facezoo.datamodules import read_micc_annotations

    ann = read_micc_annotations(shared_data / "micc" / "annotations.json")
    assert len(ann) >= 50
    for subject, a in ann.items():
        assert set(a["correspondences"]) == set(MICC_LANDMARKS), subject
        assert all(v >= 0 for v in a["correspondences"].values())

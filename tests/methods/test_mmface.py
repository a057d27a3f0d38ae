"""MMFace: network shapes, ground truth, the three stages training, stage checkpoints, ICP pose refinement,
NME3D in evaluation, and the joint zoo config fitted as typed (made small)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from facezoo.datamodules.synthetic import SyntheticFaces

import facezoo.nn as fnn
from facezoo.cli import main
from facezoo.geometry import WeakPerspective, euler_to_matrix, volume_surface
from facezoo.methods import MMFace
from facezoo.methods.mmface_targets import fit_weak_perspective, ground_truth_camera

MODEL = "procedural:600"
SIZE = 32
ZOO = Path(__file__).resolve().parents[2] / "zoo"
TINY = dict(
    morphable_model=MODEL, image_size=SIZE, volume_size=16, volume_depth=16,
    hourglass={"features": 16, "depth": 1},
    pmn={"channels": (8, 8, 16, 16, 16), "hidden": 32, "pool_size": 1},
)  # fmt: skip


def make(**kwargs) -> MMFace:
    return MMFace(**{**TINY, **kwargs})


@pytest.fixture(scope="module")
def batch():
    dm = SyntheticFaces(MODEL, image_size=SIZE, batch_size=4, num_train=4, yaw_range=30.0)
    return next(iter(dm.train_dataloader()))


def test_vmn_is_two_hourglasses_to_a_volume_and_pmn_has_three_branches():
    vmn = fnn.StackedHourglass(fnn.HourglassConfig(features=16, depth=2, out_channels=12, volume_size=24))
    out = vmn(torch.rand(2, 3, 64, 64))
    assert len(out) == 2 and all(o.shape == (2, 12, 24, 24) for o in out)
    pmn = fnn.VolumeRegressor(fnn.VolumeRegressorConfig(n_id=7, n_exp=5, channels=(4, 4, 8, 8, 8), hidden=16))
    p = pmn(torch.rand(3, 32, 32, 32))
    assert {k: tuple(v.shape) for k, v in p.items()} == {"id": (3, 7), "exp": (3, 5), "pose": (3, 6)}
    n_conv = sum(isinstance(m, torch.nn.Conv3d) for m in pmn.encoder.modules())
    n_fc = [
        sum(isinstance(m, torch.nn.Linear) for m in b)
        for b in (pmn.id_branch, pmn.exp_branch, pmn.pose_branch)
    ]
    assert n_conv == 5 and n_fc == [3, 2, 2]  # the extra FC layer of the identity branch (§3.2.2)


def test_weak_perspective_fit_recovers_a_rotated_camera():
    g = torch.Generator().manual_seed(0)
    rot = euler_to_matrix(torch.tensor([[0.2, -0.5, 0.1]]), "zyx")
    cam = WeakPerspective(torch.tensor([0.31]), rot, torch.tensor([[17.0, 14.0]]))
    pts = torch.randn(1, 68, 3, generator=g) * 40.0
    fit = fit_weak_perspective(pts, rot, cam.project(pts))
    torch.testing.assert_close(fit.scale, cam.scale)
    torch.testing.assert_close(fit.t2d, cam.t2d)


def test_ground_truth_volume_is_the_face_and_initial_pose_is_the_papers(batch):
    m = make(stage="pmn").eval()
    flat_cam = ground_truth_camera(batch, m.morphable, SIZE)
    # the synthetic perspective faces are reproduced by the weak-perspective ground truth within ~1 px (32 px)
    lm = flat_cam.project(m.morphable.landmarks(batch["params"]["vertices"]))
    assert float((lm - batch["landmarks68"]).norm(dim=-1).mean()) < 1.0
    vol = m.target_volume(flat_cam, batch["params"]["vertices"])
    assert vol.shape == (4, 16, 16, 16) and 0.05 < float(vol.mean()) < 0.6
    # the silhouette of the volume matches the rendered face mask (downsampled to 16x16)
    mask = torch.nn.functional.avg_pool2d(batch["mask"], 2)[:, 0] > 0.5
    sil = vol.amax(1) > 0.5
    assert float((sil == mask).float().mean()) > 0.9
    # the paper's initial pose: f = init_scale * S / 256 px/mm, frontal, t at the crop centre
    cam0 = m.decode_pose(torch.zeros(1, 6))
    assert math.isclose(float(cam0.scale), SIZE / 256.0, rel_tol=1e-6)
    torch.testing.assert_close(cam0.t2d, torch.tensor([[16.0, 16.0]]))
    torch.testing.assert_close(cam0.rotation, torch.eye(3)[None])


@pytest.mark.parametrize("stage", ["vmn", "pmn", "joint"])
def test_each_stage_trains_a_few_steps(stage, batch):
    torch.manual_seed(0)
    m = make(stage=stage, lr=1e-3)
    m.train()
    opt = m.configure_optimizers()["optimizer"]
    first = None
    for _ in range(6):
        terms = m.training_losses(batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = float(terms["total"].detach()) if first is None else first
    last = float(m.training_losses(batch)["total"])
    expected = {"vmn": {"v"}, "pmn": {"id", "exp", "p"}, "joint": {"v", "id", "exp", "p"}}[stage]
    assert set(terms) == expected | {"total"}
    assert last < 0.9 * first
    trained = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("vmn.") for n in trained) == (stage != "pmn")
    assert any(n.startswith("pmn.") for n in trained) == (stage != "vmn")


def test_total_is_eq9_with_the_papers_weights_and_the_single_loss_option(batch):
    m = make(stage="joint")
    assert (m.hparams.lambda_v, m.hparams.lambda_exp, m.hparams.lambda_p) == (1e6, 5.0, 5.0)
    with torch.no_grad():
        t = m.training_losses(batch)
    want = 1e6 * t["v"] + t["id"] + 5.0 * t["exp"] + 5.0 * t["p"]
    torch.testing.assert_close(t["total"], want)
    single = make(stage="pmn", parametric_loss="single")
    with torch.no_grad():
        s = single.training_losses(batch)
    assert set(s) == {"p_single", "total"} and float(s["total"]) > 0


def test_pose_loss_vanishes_at_the_ground_truth_pose(batch):
    """E_P compares the ground-truth shape under both poses: a PMN pose equal to the ground truth gives 0."""
    m = make(stage="pmn")
    cam = ground_truth_camera(batch, m.morphable, SIZE)
    m.decode_pose = lambda raw: cam  # the PMN's pose replaced by the ground truth
    with torch.no_grad():
        t = m.training_losses(batch)
    assert float(t["p"]) < 1e-6 and float(t["id"]) > 0


def test_joint_stage_loads_the_stage_checkpoints_and_warns_without(tmp_path, batch):
    vmn, pmn = make(stage="vmn"), make(stage="pmn")
    torch.save({"state_dict": vmn.state_dict()}, tmp_path / "vmn.ckpt")
    torch.save({"state_dict": pmn.state_dict()}, tmp_path / "pmn.ckpt")
    joint = make(
        stage="joint", vmn_checkpoint=str(tmp_path / "vmn.ckpt"), pmn_checkpoint=str(tmp_path / "pmn.ckpt")
    )
    for name, src in (("vmn", vmn), ("pmn", pmn)):
        for k, v in getattr(src, name).state_dict().items():
            assert torch.equal(getattr(joint, name).state_dict()[k], v)
    with pytest.warns(UserWarning, match="no vmn_checkpoint given"):
        make(stage="joint", pmn_checkpoint=str(tmp_path / "pmn.ckpt"))
    # in stage vmn the PMN is frozen and stays in eval mode (BatchNorm statistics fixed)
    assert not vmn.train().pmn.training and not any(p.requires_grad for p in vmn.pmn.parameters())


def test_icp_refinement_reduces_the_error_of_a_perturbed_pose(batch):
    """The ground-truth mesh under a pose off by 6 degrees of yaw, 8 % scale and 2 px: ICP onto the ground-
    truth volume's surface (64^3 here) brings its landmarks much closer."""
    m = make(stage="pmn", volume_size=64, volume_depth=64)
    verts = batch["params"]["vertices"]
    cam = ground_truth_camera(batch, m.morphable, SIZE)
    volume = m.target_volume(cam, verts)
    dr = euler_to_matrix(torch.tensor([[0.03, 0.1, -0.03]]), "zyx")
    bad = WeakPerspective(cam.scale * 1.08, dr @ cam.rotation, cam.t2d + torch.tensor([2.0, -1.5]))
    lm = m.morphable.landmarks(verts)
    before = (bad.project(lm) - cam.project(lm)).norm(dim=-1).mean(-1)
    fixed = m.refine_pose(bad, verts, volume)
    after = (fixed.project(lm) - cam.project(lm)).norm(dim=-1).mean(-1)
    assert bool((after < 0.4 * before).all()), (before, after)
    assert len(volume_surface(volume, SIZE, m.z_range)[0]) > 100


def test_evaluation_reports_nme3d_and_the_gt_pose_switch(batch, tmp_path):
    m = make(stage="pmn", pose_refinement="gt").eval()
    with torch.no_grad():
        rec = m.reconstruct(batch)
        cam = ground_truth_camera(batch, m.morphable, SIZE)
        torch.testing.assert_close(rec.camera.t2d, cam.t2d)
        out = m.evaluate(rec, batch)
    assert 0.0 < float(out["nme3d"]) < 1.0 and int(m.val_nme3d.count) == 4
    with pytest.raises(ValueError, match="pose_refinement"):
        make(pose_refinement="ransac")
    with pytest.raises(ValueError, match="n_stacks"):
        make(hourglass={"n_stacks": 3})


def test_joint_config_fits_as_typed_and_validates_with_icp(tmp_path):
    """`facezoo fit --config zoo/mmface.yaml --config zoo/data/synthetic.yaml`, made small: both networks
    start fresh (two warnings), training logs every Eq. 9 term, validation with ICP logs NME and NME3D."""
    with pytest.warns(UserWarning, match="no (vmn|pmn)_checkpoint given"):
        main([
            "fit", f"--config={ZOO / 'mmface.yaml'}", f"--config={ZOO / 'data' / 'synthetic.yaml'}",
            f"--model.morphable_model={MODEL}", f"--data.morphable_model={MODEL}",
            f"--model.image_size={SIZE}", f"--data.image_size={SIZE}",
            "--model.volume_size=16", "--model.volume_depth=16",
            "--model.hourglass={features: 16, depth: 1}",
            "--model.pmn={channels: [8, 8, 16, 16, 16], hidden: 32, pool_size: 1}",
            "--data.batch_size=2", "--data.num_train=4", "--data.num_val=2",
            "--trainer.max_steps=2", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
            "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
            "--trainer.enable_checkpointing=false", "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.save_dir={tmp_path}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.log_every_n_steps=1",
        ])  # fmt: skip
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    val = [r for r in rows if r.get("val/nme3d")]
    assert len(val) == 1 and float(val[0]["val/nme"]) > 0 and float(val[0]["val/nme3d"]) > 0
    assert {"train/loss_v", "train/loss_id", "train/loss_exp", "train/loss_p", "train/loss"} <= set(rows[0])

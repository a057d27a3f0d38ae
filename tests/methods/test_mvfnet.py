"""MVF-Net (methods/mvfnet.py and its pose / mask helpers) on tiny synthetic triplets."""

from __future__ import annotations

import math

import pytest
import torch
from facezoo.datamodules.synthetic import SyntheticFaces

import facezoo.nn as fnn
from facezoo.geometry import camera_from_300wlp
from facezoo.geometry.cameras import WeakPerspective
from facezoo.geometry.rotations import euler_to_matrix, matrix_to_euler
from facezoo.methods import FaceReconstruction, MVFNet, vertex_error
from facezoo.methods.mvfnet import view_pairs
from facezoo.methods.mvfnet_masks import landmark_region_mask, oblique_side, observed_mask
from facezoo.methods.mvfnet_pose import encode_pose, ground_truth_camera
from facezoo.methods.views import flatten_views
from facezoo.render import MeshRenderer

MODEL = "procedural:600"
SIZE = 48


def make(**kwargs) -> MVFNet:
    args = dict(morphable_model=MODEL, image_size=SIZE, width_divisor=16, hidden=16)
    args.update(kwargs)
    return MVFNet(**args)


@pytest.fixture(scope="module")
def data():
    return SyntheticFaces(MODEL, image_size=SIZE, batch_size=2, num_train=4, num_val=2, set_size=3,
                          set_mode="multiview", yaw_range=40.0)  # fmt: skip


@pytest.fixture(scope="module")
def batch(data):
    return next(iter(data.train_dataloader()))


def test_network_keeps_the_released_parameter_names_and_size():
    net = fnn.build("mvfnet")
    keys = set(net.state_dict())
    for name in ("layer1.conv1.weight", "layer1.bn7.running_var", "fc_3dmm.fc1.weight", "fc_3dmm.fc2.bias",
                 "fc_pose.fc3.weight", "fc_pose.fc4.bias"):  # fmt: skip
        assert name in keys
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512)]
    closed = sum(9 * a * b + b + 2 * b for a, b in convs)  # conv weight + bias, BN weight + bias
    closed += (1536 * 768 + 768) + (768 * 228 + 228) + (512 * 256 + 256) + (256 * 6 + 6)
    assert fnn.count_parameters(net) == closed


def test_view_pairs_are_the_papers_four_for_three_views():
    assert set(view_pairs(3, 0)) == {(0, 1), (1, 0), (0, 2), (2, 0)}
    assert view_pairs(2, 1) == [(1, 0), (0, 1)]
    with pytest.raises(ValueError, match="anchor_view"):
        view_pairs(3, 3)


def test_reconstruct_gives_one_shape_per_set_and_a_camera_per_view(batch):
    method = make().eval()
    with torch.no_grad():
        rec = method.reconstruct(batch, render=True)
    assert len(rec) == 6 and rec.views == 3 and rec.image.shape == (6, 3, SIZE, SIZE)
    assert torch.equal(rec.vertices[0], rec.vertices[2]) and not torch.equal(rec.vertices[0], rec.vertices[3])
    assert rec.params["pose"].shape == (6, 6) and rec.landmarks2d.shape == (6, 68, 2)
    with pytest.raises(ValueError, match="n_views=3"):
        method.reconstruct({"image": batch["image"][:, :2]})


def test_ground_truth_camera_from_300wlp_pose_and_from_the_mesh(batch):
    method = make()
    pose = torch.tensor([[0.1, -0.4, 0.05, 20.0, 25.0, 0.0, 2e-4]])
    cam = ground_truth_camera({"params": {"pose": pose}}, method.morphable, SIZE)
    ref = camera_from_300wlp(pose, SIZE)
    assert torch.allclose(cam.rotation, ref.rotation) and torch.allclose(cam.t2d, ref.t2d)
    flat = flatten_views(batch)
    fit = ground_truth_camera(flat, method.morphable, SIZE)
    lm = fit.project(method.morphable.landmarks(flat["params"]["vertices"]))
    err = (lm - flat["landmarks68"]).norm(dim=-1).mean()
    assert float(err) < 0.02 * SIZE  # the 1 m perspective camera is nearly weak-perspective
    angles = matrix_to_euler(fit.rotation)  # the data's (pitch, yaw, roll), R = Rz Ry Rx
    assert torch.allclose(angles, flat["params"]["angles"], atol=math.radians(5))


def _gt_rec(method: MVFNet, batch, identity_offset: float = 0.0) -> FaceReconstruction:
    flat = flatten_views(batch)
    model = method.morphable
    cam = ground_truth_camera(flat, model, SIZE)
    ident = flat["params"]["id"].clone()
    ident[:, 0] += identity_offset
    verts = model(ident, flat["params"]["exp"])
    lm3d = model.landmarks(verts)
    pose = encode_pose(cam, method.s0, SIZE)
    params = {"id": ident, "exp": flat["params"]["exp"], "pose": pose}
    return FaceReconstruction(verts, model.triangles, lm3d, cam.project(lm3d), params, cam, views=3)


def test_supervised_terms_weights_and_their_zeros_at_the_ground_truth(batch):
    method = make()
    terms = method.training_losses(batch)
    assert set(terms) == {"landmark", "pose", "3dmm", "reg", "total"}
    manual = 0.1 * terms["landmark"] + 10 * terms["pose"] + terms["3dmm"] + terms["reg"]
    torch.testing.assert_close(terms["total"], manual)
    flat = flatten_views(batch)
    rec = _gt_rec(method, batch)
    assert float(method.pose_loss(rec, flat)) < 1e-8 and float(method.coefficient_loss(rec, flat)) < 1e-10
    off = _gt_rec(method, batch, identity_offset=2.0)
    torch.testing.assert_close(method.coefficient_loss(off, flat), torch.tensor(4.0))  # one coefficient, 2^2


def test_self_supervised_losses_prefer_the_true_shape_and_pose(batch):
    """At the ground truth the four cross-view projections agree with the observed images better than with a
    wrong identity or a wrong source pose (independent expectation: the data were rendered from it)."""
    method = make(stage="selfsupervised", supervised_checkpoint=None)
    flat = flatten_views(batch)
    with torch.no_grad():
        true = method.multiview_losses(_gt_rec(method, batch), flat)
        wrong_shape = method.multiview_losses(_gt_rec(method, batch, identity_offset=3.0), flat)
        rec = _gt_rec(method, batch)
        p = rec.params["pose"].clone()
        p[1::3, 2] += 0.25  # the side views' yaw off by 14 degrees
        rec.camera = WeakPerspective(rec.camera.scale, euler_to_matrix(p[:, 1:4]), rec.camera.t2d)
        wrong_pose = method.multiview_losses(rec, flat)
    assert set(true) == {"photo", "align"}
    for wrong in (wrong_shape, wrong_pose):
        assert float(true["photo"]) < float(wrong["photo"])
        assert float(true["align"]) < float(wrong["align"])


def test_masks_keep_the_half_the_oblique_camera_sees(batch):
    """oblique_side agrees with the z-buffer: the half of the face kept in the frontal view is the half whose
    vertices the side camera sees; both directions of a pair cut the same model half."""
    method = make()
    model = method.morphable
    front = WeakPerspective(torch.tensor([0.2]), torch.eye(3)[None], torch.tensor([[SIZE / 2, SIZE / 2]]))
    side = WeakPerspective(torch.tensor([0.2]), euler_to_matrix(torch.tensor([[0.0, 0.7, 0.0]])),
                           torch.tensor([[SIZE / 2, SIZE / 2]]))  # fmt: skip
    s = oblique_side(side, front)
    assert torch.equal(s, oblique_side(front, side)) and float(s.abs()) == 1
    v = model.mean[None]
    seen = MeshRenderer(SIZE)(v, model.triangles, side).visible[0]
    nose_x = float(v[0, model.landmarks68[30], 0])
    seen_side = math.copysign(1.0, float((v[0, seen, 0] - nose_x).mean()))
    assert seen_side == float(s)  # model +x maps to image +x in the frontal view
    keep = landmark_region_mask(front.project(model.landmarks(v)), s, (SIZE, SIZE))[0, 0]
    lm = front.project(model.landmarks(v))[0]
    near = lm[1] if float(s) < 0 else lm[15]  # a jaw point on the side the oblique camera sees
    far = lm[15] if float(s) < 0 else lm[1]
    px = lambda p: keep[int(p[1]), int(p[0])]  # noqa: E731
    assert px(near) == 1 and px(far) == 0
    assert float(keep[: int(lm[17:27, 1].min()) - 1].sum()) == 0  # nothing above the eyebrows


def test_observed_mask_snaps_to_the_image_edge():
    yy, xx = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    face = ((xx - 24) ** 2 + (yy - 24) ** 2 < 14**2).float()
    image = (0.2 + 0.6 * face).expand(1, 3, SIZE, SIZE)
    coverage = ((xx - 27) ** 2 + (yy - 24) ** 2 < 14**2).float()[None, None]  # 3 px off
    lm = torch.zeros(1, 68, 2)
    lm[0, 17:27, 1] = -10.0  # eyebrows above the image: no cut
    mask = observed_mask(image, coverage, lm, torch.zeros(1), sigma_s=8.0, sigma_r=0.1)

    def iou(m):
        m = m[0, 0] > 0.5
        return float((m & (face > 0)).sum() / (m | (face > 0)).sum())

    assert iou(mask) > iou(coverage) + 0.05


def test_a_few_training_steps_per_stage(tmp_path):
    small = SyntheticFaces(MODEL, image_size=32, batch_size=2, num_train=2, set_size=3, set_mode="multiview")
    batch = next(iter(small.train_dataloader()))
    torch.manual_seed(0)
    sup = make(lr=1e-3, image_size=32)
    opt = sup.configure_optimizers()
    first = None
    for _ in range(6):
        terms = sup.training_losses(batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        first = float(terms["total"].detach()) if first is None else first
    assert float(sup.training_losses(batch)["total"].detach()) < 0.5 * first
    path = tmp_path / "sup.ckpt"
    torch.save({"state_dict": sup.state_dict()}, path)
    light = {"levels": 2, "warps": 1, "iterations": 10}  # a cheaper flow: this checks the plumbing
    selfsup = make(stage="selfsupervised", supervised_checkpoint=str(path), lr=1e-4, image_size=32,
                   flow_kwargs=light)  # fmt: skip
    assert all(
        torch.equal(a, b) for a, b in zip(selfsup.net.state_dict().values(), sup.net.state_dict().values())
    )
    assert not any(k.startswith("flow") for k in selfsup.state_dict())  # the frozen flow is not checkpointed
    opt = selfsup.configure_optimizers()
    before = [p.detach().clone() for p in selfsup.net.parameters()]
    terms = selfsup.training_losses(batch)
    assert set(terms) == {"landmark", "photo", "align", "reg", "total"}
    assert all(torch.isfinite(v) for v in terms.values())
    torch.testing.assert_close(terms["total"], terms["landmark"] + 10 * terms["photo"] + 0.1 * terms["align"])
    opt.zero_grad()
    terms["total"].backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, selfsup.net.parameters()))


def test_pwcnet_is_used_with_user_weights(tmp_path):
    path = tmp_path / "pwc.pth"
    torch.save(fnn.build("pwcnet").state_dict(), path)
    method = make(stage="selfsupervised", supervised_checkpoint=None, flow_weights=str(path))
    assert isinstance(method.flow, fnn.PWCNet) and not any(p.requires_grad for p in method.flow.parameters())
    assert isinstance(make(stage="selfsupervised").flow, fnn.HornSchunckFlow)


def test_multiview_batch_through_evaluate(data):
    """``yaw [B,V]``, ``landmarks68 [B,V,68,2]``, ``params.vertices [B,V,N,3]`` reach the metrics as rows."""
    method = make().eval()
    batch = next(iter(data.val_dataloader()))
    assert batch["yaw"].shape == (2, 3)
    with torch.no_grad():
        rec = method.reconstruct(batch)
    out = method.evaluate(rec, batch)
    gt = batch["params"]["vertices"].flatten(0, 1)
    mask = method.morphable.mask("front")
    torch.testing.assert_close(out["vertex_error_mm"], vertex_error(rec.vertices, gt, mask).mean())
    assert int(method.val_nme.count) == 6
    assert torch.isfinite(method.val_nme.compute()["nme"] if isinstance(method.val_nme.compute(), dict)
                          else method.val_nme.compute()).all()  # fmt: skip

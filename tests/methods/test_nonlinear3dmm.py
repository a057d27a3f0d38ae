"""NonlinearFace3DMM: UV -> vertices, M's camera, pairings, the landmark loss's reach, both stages."""

import lightning.pytorch as pl
import pytest
import torch
from facezoo.datamodules.synthetic import SyntheticFaces

import facezoo.methods.nonlinear3dmm as n3
from facezoo.geometry.rotations import euler_to_matrix
from facezoo.methods import FaceReconstruction, NonlinearFace3DMM
from facezoo.methods.nonlinear3dmm_ops import (
    PROXY_PAIRINGS,
    camera_from_projection,
    fit_projection,
    loss_pairings,
    uv_layout,
)
from facezoo.morphable.uv import PART_LANDMARKS, uv_part_boxes

MODEL, SIZE, UV = "procedural:600", 32, (32, 40)
TINY = dict(
    morphable_model=MODEL, image_size=SIZE, uv_size=UV, shape_dim=16, albedo_dim=16,
    encoder_channels=(8,) * 13, decoder_channels=(16, 16, 8, 8, 8, 8), local_channels=(8, 8, 8, 8),
    fusion_channels=8,
)  # fmt: skip


def make(**kw):
    return NonlinearFace3DMM(**{**TINY, **kw})


@pytest.fixture(scope="module")
def batch():
    dm = SyntheticFaces(MODEL, image_size=SIZE, batch_size=3, num_train=6)
    return next(iter(dm.train_dataloader()))


def test_camera_of_a_weak_perspective_projection_is_exact():
    r = euler_to_matrix(torch.tensor([[0.3, -0.5, 0.2]]))
    m = torch.cat((1.7 * r[:, 0], torch.tensor([[4.0]])), -1)
    m = torch.stack((m[0], torch.cat((-1.7 * r[0, 1], torch.tensor([9.0])))))[None]  # y down: -s r2
    v = torch.randn(1, 20, 3)
    expected = v @ m[0, :, :3].T + m[0, :, 3]
    assert torch.allclose(camera_from_projection(m).project(v), expected, atol=1e-5)
    assert torch.allclose(fit_projection(v, expected), m, atol=1e-3)


def test_part_boxes_enclose_their_landmarks_in_uv():
    model = make().morphable
    boxes = uv_part_boxes(model.uv, model.landmarks68, UV, margin=0.0)
    for (t, l, h, w), idx in zip(boxes, PART_LANDMARKS.values()):
        p = model.uv[model.landmarks68[list(idx)]]
        rows, cols = (1 - p[:, 1]) * UV[0], p[:, 0] * UV[1]
        assert h % 8 == 0 and w % 8 == 0 and t + h <= UV[0] and l + w <= UV[1]
        assert rows.min() >= t - 1e-4 and rows.max() <= t + h + 1e-4
        assert cols.min() >= l - 1e-4 and cols.max() <= l + w + 1e-4
    assert make().part_boxes == uv_part_boxes(model.uv, model.landmarks68, UV)  # used by the decoders
    assert make(local_pathway=False).shape_decoder.proxy.config.local_boxes == ()


def test_uv_to_vertices_reads_the_offset_map_at_the_model_uvs():
    m = make()
    model = m.morphable
    zero = torch.zeros(1, 3, *UV)
    assert torch.equal(m.vertices_from_uv(zero)[0], model.mean)
    # an offset map that is affine in (u, v) returns exactly that function of each vertex's uv
    h, w = UV
    cols = (torch.arange(w) + 0.5) / w
    rows = 1 - (torch.arange(h) + 0.5) / h
    u, v = cols[None, :].expand(h, w), rows[:, None].expand(h, w)
    field = torch.stack((u, v, 2 * u - v))[None]
    uv = model.uv.clamp(0.5 / w, 1 - 0.5 / w)  # inside the outer texel centres (border padding outside)
    uv = torch.stack((uv[:, 0], model.uv[:, 1].clamp(0.5 / h, 1 - 0.5 / h)), -1)
    expected = model.mean + 10.0 * torch.stack((uv[:, 0], uv[:, 1], 2 * uv[:, 0] - uv[:, 1]), -1)
    assert torch.allclose(m.vertices_from_uv(field)[0], expected, atol=1e-4)
    # and the mean position map holds the mean shape on the charts
    lay = uv_layout(model, UV)
    assert torch.allclose(m.uv_mean, lay.mean) and 0 < float(lay.mask.mean()) < 1


def test_the_loss_renders_the_three_pairings_and_never_s_with_a(batch, monkeypatch):
    m = make(stage="unsupervised")
    seen, dec = [], {}
    decode, render = m.decode, m.render

    def spy_decode(*a):
        dec["d"] = decode(*a)
        return dec["d"]

    def spy_render(vertices, albedo, *a, **k):
        d = dec["d"]
        s = next(kind for kind, off in d.shape.items() if torch.equal(m.vertices_from_uv(off), vertices))
        alb = next(kind for kind, t in d.albedo.items() if t is albedo)
        seen.append((s, alb))
        return render(vertices, albedo, *a, **k)

    monkeypatch.setattr(m, "decode", spy_decode)
    monkeypatch.setattr(m, "render", spy_render)
    with torch.no_grad():  # make the residuals non-zero so S != S~ and A != A~
        m.shape_decoder.residual.fusion[-1].weight.normal_(0, 0.1)
        m.albedo_decoder.residual.fusion[-1].weight.normal_(0, 0.1)
    regs = {}
    for name in ("albedo_symmetry", "albedo_constancy", "shape_smoothness"):
        fn = getattr(n3, name)
        monkeypatch.setattr(
            n3, name, lambda x, *a, _f=fn, _n=name, **k: regs.setdefault(_n, x) is not None and _f(x, *a, **k)
        )
    terms = m.training_losses(batch)
    # first match wins in spy_render: "true" is listed before "proxy", so tell them apart explicitly
    assert len(seen) == 3
    d = dec["d"]
    assert not torch.equal(d.shape["true"], d.shape["proxy"]) and not torch.equal(
        d.albedo["true"], d.albedo["proxy"]
    )
    assert sorted(seen) == sorted(PROXY_PAIRINGS) == sorted(loss_pairings(True))
    assert ("true", "true") not in seen
    assert regs["albedo_symmetry"] is d.albedo["proxy"] and regs["albedo_constancy"] is d.albedo["proxy"]
    assert torch.allclose(regs["shape_smoothness"], m.shape_map(d.shape["proxy"]))
    assert set(terms) == {"rec", "per", "lan", "sym", "con", "smo", "res", "res_sym", "total"}
    assert float(terms["per"]) == 0.0  # no perceptual weights


def test_without_proxies_the_loss_renders_s_with_a_and_regularises_them(batch):
    m = make(stage="unsupervised", proxies=False)
    terms = m.training_losses(batch)
    assert "res" not in terms and "res_sym" not in terms
    assert loss_pairings(False) == (("true", "true"),)
    d = m.decode(torch.randn(1, 16), torch.randn(1, 16))
    assert d.shape["true"] is d.shape["proxy"] and d.shape_residual is None


def test_landmark_loss_reaches_the_encoder_but_not_the_decoder(batch):
    m = make(stage="unsupervised")
    with torch.no_grad():  # away from the zero-initialised output layer, so f_S moves the shape
        m.shape_decoder.proxy.fusion[-1].weight.normal_(0, 0.1)
    flat = dict(batch)
    codes = m.encode(flat["image"])
    loss = m._landmark_term(flat, codes, m.projection(codes["pose"]))
    loss.backward()
    assert all(p.grad is None for p in m.shape_decoder.parameters())
    assert m.encoder.trunk[0][0].weight.grad.abs().sum() > 0
    assert m.encoder.pose.weight.grad.abs().sum() > 0


def test_start_is_the_centred_frontal_mean_face_under_ambient_light(batch):
    m = make().eval()
    rec = m.reconstruct(batch, render=True)
    assert isinstance(rec, FaceReconstruction) and len(rec) == 3
    assert torch.allclose(rec.vertices, m.morphable.mean.expand(3, -1, -1), atol=1e-5)
    s0 = 1.015 * SIZE / 224
    assert torch.allclose(rec.camera.scale, torch.full((3,), s0)) and torch.allclose(
        rec.camera.rotation, torch.eye(3)
    )
    assert rec.params["uv_shape"].shape == (3, 3, *UV) and rec.params["uv_albedo"].shape == (3, 3, *UV)
    assert rec.image.shape == (3, 3, SIZE, SIZE) and torch.equal(m.neutral_shape(rec), rec.vertices)
    assert torch.allclose(rec.params["light"][:, 0::9], torch.full((3, 3), 0.8))


def test_pretrain_terms_match_their_ground_truth(batch):
    m = make()
    terms = m.training_losses(batch)
    assert set(terms) == {"pose", "shape", "albedo", "lan", "total"}
    # the shape term at the start (decoded = mean) is the mean squared vertex distance to the truth in 10 mm
    gt = batch["params"]["vertices"]
    expected = (((m.morphable.mean - gt) / 10.0) ** 2).sum(-1).mean()
    assert float(terms["shape"].detach()) == pytest.approx(float(expected), rel=1e-3)
    # data without ground-truth shapes: a clear error naming the key
    bad = {k: v for k, v in batch.items() if k != "params"}
    with pytest.raises(ValueError, match="params\\['vertices'\\]"):
        m.training_losses(bad)


def test_both_stages_train_a_few_steps_and_hand_over(tmp_path, batch):
    torch.manual_seed(0)
    dm = SyntheticFaces(MODEL, image_size=SIZE, batch_size=3, num_train=6, num_val=3)
    kw = dict(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
              num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path)  # fmt: skip
    pre = make(stage="pretrain", lr=3e-3)
    before = float(pre.training_losses(batch)["total"])
    pl.Trainer(**kw).fit(pre, dm)
    pre.train()
    after = float(pre.training_losses(batch)["total"])
    assert after < before
    ckpt = tmp_path / "pre.ckpt"
    torch.save({"state_dict": pre.state_dict()}, ckpt)
    uns = make(stage="unsupervised", pretrain_checkpoint=str(ckpt))
    for name in ("encoder", "shape_decoder", "albedo_decoder"):
        a, b = getattr(pre, name).state_dict(), getattr(uns, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    before = float(uns.training_losses(batch)["total"])
    pl.Trainer(**kw).fit(uns, dm)
    uns.train()
    assert float(uns.training_losses(batch)["total"]) < before


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size"):
        make(image_size=40)
    with pytest.raises(ValueError, match="uv_size"):
        make(uv_size=(4, 40))


def test_prediction_writer_exports_the_uv_maps(tmp_path, batch):
    import numpy as np
    from facezoo.callbacks.export import ReconstructionWriter
    from PIL import Image

    m = make().eval()
    with torch.no_grad():
        rec = m.predict_step(batch, 0)
    writer = ReconstructionWriter(str(tmp_path), pictures=False)
    writer.write_on_batch_end(None, m, rec, None, batch, 0, 0)
    name = f"{int(batch['index'][0]):06d}"
    assert Image.open(tmp_path / f"{name}_uv_albedo.png").size == (UV[1], UV[0])
    shape = np.load(tmp_path / f"{name}_uv_shape.npy")
    assert np.allclose(shape, rec.params["uv_shape"][0].numpy())

import csv

import pytest
import torch

from facezoo.methods import Deep3DFace, FaceReconstruction, aggregate_identity


def test_head_starts_at_the_mean_face(tiny_method):
    method = tiny_method().eval()
    image = torch.rand(2, 3, 48, 48)
    params, conf = method.regress(image)
    assert conf is None
    model = method.morphable
    assert sum(method.sizes) == model.n_id + model.n_exp + model.n_tex + 33
    for key in ("id", "exp", "tex", "angles", "translation"):
        assert params[key].abs().max() == 0
    light = params["light"].reshape(2, 3, 9)
    assert torch.equal(light[..., 0], torch.full((2, 3), 0.8)) and light[..., 1:].abs().max() == 0
    rec = method.reconstruct({"image": image}, render=True)
    assert torch.allclose(rec.vertices[0], model.mean)
    # the mean face is centred in the crop, about 1 m from the camera
    centre = rec.landmarks2d[0].mean(0)
    assert (centre - 48 / 2).abs().max() < 48 * 0.15
    assert rec.image.shape == (2, 3, 48, 48) and rec.mask.sum() > 0.2 * 2 * 48 * 48


def test_output_scale_multiplies_each_group_and_keeps_the_mean_face_start(tiny_method):
    scales = {"angles": 0.1, "translation": 0.1, "id": 3.0, "light": 0.5}
    plain, scaled = tiny_method().eval(), tiny_method(output_scale=scales).eval()
    state = {k: v for k, v in plain.rnet.state_dict().items() if k != "fc.bias"}
    scaled.rnet.load_state_dict(state, strict=False)
    with torch.no_grad():  # a non-zero head, the same in both
        plain.rnet.fc.weight.normal_()
        scaled.rnet.fc.weight.copy_(plain.rnet.fc.weight)
    image = torch.rand(2, 3, 48, 48)
    a, _ = plain.regress(image)
    b, _ = scaled.regress(image)
    for key in ("id", "exp", "tex", "angles", "light", "translation"):
        expected = scales.get(key, 1.0) * a[key]
        if key == "light":  # the ambient bias is 0.8 / s, so the scaled ambient stays 0.8
            expected[:, ::9] += 0.8 - 0.5 * 0.8
        assert torch.allclose(b[key], expected, atol=1e-5), key
    fresh, _ = tiny_method(output_scale=scales).eval().regress(image)
    assert torch.equal(fresh["light"].reshape(2, 3, 9)[..., 0], torch.full((2, 3), 0.8))
    assert fresh["id"].abs().max() == 0
    with pytest.raises(ValueError, match="unknown group"):
        tiny_method(output_scale={"pose": 0.1})
    with pytest.raises(ValueError, match="positive"):
        tiny_method(output_scale={"id": 0.0})


def test_camera_focal_scales_with_image_size(tiny_method):
    m = tiny_method()
    cam = m.camera({"angles": torch.zeros(1, 3), "translation": torch.zeros(1, 3)})
    assert float(cam.focal[0]) == pytest.approx(1015.0 * 48 / 224)
    assert cam.center[0].tolist() == [48 / 2, 48 / 2]
    assert float(cam.translation[0, 2]) == pytest.approx(-1000.0)


def test_loss_terms_are_logged_and_paper_weights_used(batch, tiny_method):
    method = tiny_method()
    assert method.loss_weights() == {"photo": 1.9, "lan": 1.6e-3, "per": 0.2, "coef": 3e-4, "tex": 5.0}
    params, _ = method.regress(batch["image"])
    rec = method._reconstruction(params, render=False)
    terms = method.losses(batch, rec, method.loss_weights())
    assert set(terms) == {"photo", "per", "lan", "coef", "tex", "total"}
    assert float(terms["per"]) == 0.0  # no recognition weights: the term is off
    expected = sum(w * terms[k] for k, w in method.loss_weights().items())
    assert torch.allclose(terms["total"], expected)


def test_a_few_steps_reduce_the_total_loss(batch, tiny_method):
    torch.manual_seed(0)
    method = tiny_method(lr=1e-3, w_lan=0.05)
    opt = method.configure_optimizers()
    losses = []
    for _ in range(6):
        total = method.training_losses(batch)["total"]
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def test_aggregate_identity_hand_values():
    ident = torch.tensor([[[1.0, 0.0], [3.0, 4.0]]])
    conf = torch.tensor([[[1.0, 0.5], [3.0, 0.5]]])
    assert torch.allclose(aggregate_identity(ident, conf), torch.tensor([[2.5, 2.0]]))
    assert torch.allclose(aggregate_identity(ident), torch.tensor([[2.0, 2.0]]))


def test_cnet_with_zero_initialised_head_equals_plain_averaging(tmp_path, tiny_method, tiny_data):
    torch.manual_seed(0)
    rnet = tiny_method()
    torch.nn.init.normal_(rnet.rnet.fc.weight, std=0.01)  # a non-trivial "trained" R-Net
    path = tmp_path / "rnet.ckpt"
    torch.save({"state_dict": rnet.state_dict()}, path)
    cnet = tiny_method(stage="cnet", rnet_checkpoint=str(path)).eval()
    assert torch.equal(cnet.rnet.fc.weight, rnet.rnet.fc.weight)
    assert not any(p.requires_grad for p in cnet.rnet.parameters())
    assert all(p.requires_grad for p in cnet.cnet.parameters())
    sets = torch.rand(2, 3, 3, 48, 48)
    params, conf = cnet.regress(sets)
    assert torch.allclose(conf, torch.full_like(conf, 0.5))
    single = rnet.eval().decode(rnet.rnet(sets.flatten(0, 1)))["id"].reshape(2, 3, -1)
    expected = single.mean(1, keepdim=True).expand(-1, 3, -1).reshape(6, -1)
    assert torch.allclose(params["id"], expected, atol=1e-6)
    cnet.set_aggregation = "mean"
    # a Lightning checkpoint records the R-Net's output_scale; a C-Net with another one is refused
    torch.save({"state_dict": rnet.state_dict(), "hyper_parameters": {"output_scale": {"id": 10.0}}}, path)
    with pytest.raises(ValueError, match="output_scale"):
        tiny_method(stage="cnet", rnet_checkpoint=str(path))
    assert tiny_method(stage="cnet", rnet_checkpoint=str(path), output_scale={"id": 10}).stage == "cnet"
    plain, none = cnet.regress(sets)
    assert none is None and torch.allclose(plain["id"], params["id"], atol=1e-6)
    # C-Net training: R-Net stays in eval mode, the C-Net gets gradients
    cnet.set_aggregation = "confidence"
    cnet.train()
    assert not cnet.rnet.training and cnet.cnet.training
    batch = next(iter(tiny_data(set_size=3, batch_size=2).train_dataloader()))
    loss = cnet.training_step(batch, 0)
    loss.backward()
    assert cnet.cnet.fc2.weight.grad.abs().sum() > 0 and cnet.rnet.fc.weight.grad is None
    assert cnet.loss_weights() == {"photo": 1.9, "lan": 1.6e-3, "per": 0.1}


def test_predict_step_returns_face_reconstruction(batch, tiny_method):
    method = tiny_method()
    rec = method.predict_step(batch, 0)
    assert isinstance(rec, FaceReconstruction)
    assert rec.vertices.shape[0] == 4 and rec.image is not None and not rec.vertices.requires_grad
    assert rec.meta["index"].tolist() == batch["index"].tolist()
    sets = {"image": torch.rand(2, 3, 3, 48, 48)}
    rec = method.predict_step(sets, 0)  # an R-Net-only model averages image sets
    assert len(rec) == 6 and torch.allclose(rec.params["id"][0], rec.params["id"][2])


def test_validation_logs_metrics(tiny_method, tiny_data, tmp_path):
    """What `validate` actually logs: val/vertex_error_mm and the NME figures, in the CSV log and in
    trainer.callback_metrics, equal to the metrics recomputed by hand from the reconstructions."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from facezoo.methods import vertex_error
    from facezoo.metrics import landmark_nme

    method = tiny_method()
    dm = tiny_data(num_val=6, batch_size=3, yaw_range=20.0)
    trainer = Trainer(
        logger=CSVLogger(tmp_path), enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    trainer.validate(method, dm)
    logged = trainer.callback_metrics
    rows = [r for r in csv.DictReader(next(tmp_path.rglob("metrics.csv")).open())]
    assert float(rows[-1]["val/nme"]) == pytest.approx(float(logged["val/nme"]))
    with torch.no_grad():
        errs, nmes = [], []
        for batch in dm.val_dataloader():
            rec = method.eval().reconstruct(batch)
            gt = batch["params"]["vertices"]
            errs.append(vertex_error(rec.vertices, gt, method.morphable.mask("front")))
            nmes.append(landmark_nme(rec.landmarks2d, batch["landmarks68"]))
    assert float(logged["val/vertex_error_mm"]) == pytest.approx(float(torch.cat(errs).mean()), rel=1e-5)
    assert float(logged["val/nme"]) == pytest.approx(float(torch.cat(nmes).mean()), rel=1e-5)
    assert float(logged["val/nme_0_30"]) == pytest.approx(float(logged["val/nme"]), rel=1e-5)  # |yaw| < 20
    assert method.val_vertex_error.update_count == 0  # read and reset at epoch end


def test_bad_arguments(tiny_method):
    with pytest.raises(ValueError, match="stage"):
        tiny_method(stage="both")
    with pytest.raises(ValueError, match="image_size"):
        Deep3DFace("procedural:600", image_size=8)


def test_photometric_gradient_reaches_identity():
    """Autograd vs central differences of L_photo w.r.t. the identity coefficients at a fixed synthetic
    sample (the renderer's position gradients must carry shape information), and the true identity is
    photometrically better than the mean face. The rasterised loss is piecewise smooth, so the differences
    use the demo's small model (8 identity components) and a step of 0.05 std."""
    from facezoo.datamodules.synthetic import SyntheticFaces

    spec, size = "procedural:600:8:4:8", 64
    method = Deep3DFace(spec, backbone="resnet18", backbone_kwargs={"width": 8}, image_size=size)
    batch = next(iter(SyntheticFaces(spec, image_size=size, batch_size=2, num_test=2).test_dataloader()))
    gt = {k: batch["params"][k].clone() for k in ("id", "exp", "tex", "angles", "light", "translation")}

    def photo(params):
        rec = method._reconstruction(params, render=False)
        return method.losses(batch, rec, {"photo": 1.0})["photo"]

    torch.manual_seed(0)
    params = dict(gt, id=(gt["id"] + 0.5 * torch.randn_like(gt["id"])).requires_grad_(True))
    photo(params).backward()
    grad = params["id"].grad
    ident, eps = params["id"].detach(), 0.05
    direction = grad / grad.norm()  # directional derivative along the gradient equals its norm
    fd = photo(dict(params, id=ident + eps * direction)) - photo(dict(params, id=ident - eps * direction))
    assert float(fd) / (2 * eps) == pytest.approx(float(grad.norm()), rel=0.1)
    for k in (0, 3):
        step = torch.zeros_like(ident)
        step[0, k] = eps
        fd = (photo(dict(params, id=ident + step)) - photo(dict(params, id=ident - step))) / (2 * eps)
        assert float(grad[0, k]) == pytest.approx(float(fd), rel=0.15)
    assert photo(gt) < 0.5 * photo(dict(gt, id=torch.zeros_like(gt["id"])))


def test_short_fit_reduces_held_out_landmark_error(tiny_method, tiny_data):
    """Demo guard: a short R-Net fit on synthetic faces cuts the landmark NME of faces it never saw."""
    from facezoo.commands.demo import evaluate

    torch.manual_seed(0)
    method = tiny_method(lr=1e-3, w_lan=0.05, w_coef=0.05)
    dm = tiny_data(num_train=64, num_test=16, batch_size=8, occluder_prob=0.0)
    held_out = dm.test_dataloader()
    before = evaluate(method, held_out)
    opt = method.configure_optimizers()
    method.log = lambda *args, **kwargs: None  # no trainer attached
    method.train()
    for _ in range(5):
        for batch in dm.train_dataloader():
            loss = method.training_step(batch, 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = evaluate(method, held_out)
    assert after["nme"] < 0.85 * before["nme"], (before, after)


def test_cosine_lr_schedule_anneals_per_step(tiny_method, tiny_data):
    from lightning.pytorch import Trainer

    method = tiny_method(lr=1e-3, lr_schedule="cosine")
    trainer = Trainer(
        max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(method, tiny_data(num_train=32, batch_size=4))  # 8 batches per epoch, 4 steps: one epoch
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "step" and scheduler.scheduler.T_max == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert tiny_method().configure_optimizers().param_groups[0]["lr"] == 1e-4  # constant: a bare Adam
    with pytest.raises(ValueError, match="lr_schedule"):
        tiny_method(lr_schedule="linear")
    endless = Trainer(max_steps=-1, max_epochs=-1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="finite"):
        endless.fit(tiny_method(lr_schedule="cosine"), tiny_data(num_train=8, batch_size=4))


def test_deep3d_losses_ignore_a_placeholder_row(batch, tiny_method):
    """A Mixture batch whose second sample has no landmarks (zero-filled, valid False): the landmark term is
    that of the other rows, every image term still counts all rows; a row whose image is a placeholder counts
    in no term."""
    method = tiny_method().eval()
    with torch.no_grad():
        params, _ = method.regress(batch["image"])
        rec = method._reconstruction(params, render=False)
        weights = method.loss_weights()
        reference = method.losses(batch, rec, weights)
        keep = torch.tensor([0, 2, 3])
        sub = {"image": batch["image"][keep], "landmarks68": batch["landmarks68"][keep]}
        sub_terms = method.losses(sub, rec[keep], weights)
        mixed = dict(batch, landmarks68=batch["landmarks68"].clone())
        mixed["landmarks68"][1] = 0.0
        mixed["valid"] = {"landmarks68": torch.tensor([True, False, True, True])}
        terms = method.losses(mixed, rec, weights)
        assert torch.allclose(terms["lan"], sub_terms["lan"])
        for k in ("photo", "coef", "tex"):
            assert torch.equal(terms[k], reference[k]), k
        no_image = dict(batch, valid={"image": torch.tensor([True, False, True, True])})
        terms = method.losses(no_image, rec, weights)
        for k in ("photo", "lan", "coef", "tex"):
            assert torch.allclose(terms[k], sub_terms[k], rtol=1e-5, atol=1e-7), k


def test_a_collated_mixed_batch_trains_on_the_real_landmarks_only(tiny_method, tiny_data):
    """The real collate of samples with and without landmarks (what a Mixture hands over): the landmark term
    equals the one of the labelled samples alone, and the step's loss is finite."""
    from facezoo.data.sample import collate

    ds = tiny_data().dataset("train")
    samples = [ds[i] for i in range(4)]
    unlabelled = {k: v for k, v in samples[2].items() if k not in ("landmarks68", "landmarks5")}
    batch = collate([samples[0], samples[1], unlabelled, samples[3]])
    assert batch["valid"]["landmarks68"].tolist() == [True, True, False, True]
    method = tiny_method().eval()
    with torch.no_grad():
        params, _ = method.regress(batch["image"])
        rec = method._reconstruction(params, render=False)
        mixed = method.losses(batch, rec, method.loss_weights())
        keep = torch.tensor([0, 1, 3])
        labelled = method.losses(
            {"image": batch["image"][keep], "landmarks68": batch["landmarks68"][keep]},
            rec[keep],
            {"lan": 1.0},
        )
    assert torch.allclose(mixed["lan"], labelled["lan"]) and torch.isfinite(mixed["total"])

"""Deep3DFace's official-code options: face region, skin model, light term, ArcFace-aligned perception input,
step schedule and the official preset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from facezoo.losses.skin import SkinClassifier
from facezoo.losses.skin_deep3d import Deep3DSkinGMM

ZOO = Path(__file__).resolve().parents[2] / "zoo"


def test_photo_region_counts_only_front_triangles(batch, tiny_method):
    method = tiny_method()
    model = method.morphable
    front_tri = model.mask("front")[model.triangles.long()].all(1)  # the triangles inside the mask
    assert 0 < int(front_tri.sum()) < len(front_tri)
    torch.testing.assert_close(method.photo_triangles, front_tri)
    params, _ = method.regress(batch["image"])
    rec = method._reconstruction(params, render=False)
    out = method.render(rec, antialias=False)
    tid = out.triangle_id
    inside = (tid >= 0) & front_tri[tid.clamp_min(0)]
    # an input equal to the rendering on the front triangles and far from it everywhere else
    image = torch.where(inside[:, None], out.image, 1.0 - out.image).detach()
    assert bool(((tid >= 0) & ~inside).any())  # some rendered pixels lie outside the region
    fake = dict(batch, image=image)
    weights = {"photo": 1.0}
    region = method.losses(fake, rec, weights)["photo"]
    whole = tiny_method(photo_region=None).losses(fake, rec, weights)["photo"]
    assert float(region) < 1e-3 < float(whole)


def test_photo_region_fallback_and_errors(tiny_method, monkeypatch):
    method = tiny_method()
    monkeypatch.setattr(method.morphable, "_mask_names", [])  # a model without masks
    assert method._photo_triangles("front") is None and "whole mesh" in method._region_note
    with pytest.raises(ValueError, match="photo_region: 'ears' is not a mask"):
        tiny_method(photo_region="ears")


@pytest.mark.parametrize(
    "kwargs, kind, attention",
    [({}, Deep3DSkinGMM, "raw"), ({"skin_model": "rule"}, SkinClassifier, "threshold"),
     ({"skin_attention": "threshold"}, Deep3DSkinGMM, "threshold")],
)  # fmt: skip
def test_skin_models_and_attention_rules(tiny_method, kwargs, kind, attention):
    method = tiny_method(**kwargs)
    assert isinstance(method.skin, kind) and method.skin_attention == attention
    with pytest.raises(ValueError, match="skin_model"):
        tiny_method(skin_model="jones")


def test_light_term_is_the_official_gamma_loss(batch, tiny_method):
    method = tiny_method(w_gamma=10.0)
    assert method.loss_weights()["gamma"] == 10.0 and "gamma" not in tiny_method().loss_weights()
    params, _ = method.regress(batch["image"])
    params["light"] = torch.randn_like(params["light"])
    rec = method._reconstruction(params, render=False)
    terms = method.losses(batch, rec, method.loss_weights())
    # official reg_loss: gamma [B,3,9], torch.mean((gamma - gamma.mean over RGB)^2) over everything
    g = params["light"].reshape(-1, 3, 9)
    expect = ((g - g.mean(dim=1, keepdim=True)) ** 2).mean()
    torch.testing.assert_close(terms["gamma"], expect)
    total = sum(w * terms[k] for k, w in method.loss_weights().items())
    torch.testing.assert_close(terms["total"], total)


def test_arcface_aligned_perception_term(batch, tiny_method):
    from facezoo.losses import FaceEmbedder
    from facezoo.nn import build

    torch.manual_seed(0)
    embedder = FaceEmbedder(build("iresnet50", layers=(1, 1, 1, 1), width=8))
    seen = []
    embedder.network.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    per = {}
    for mode in ("arcface", "resize"):
        method = tiny_method(perceptual_alignment=mode)
        method.register_external("embedder", embedder)  # as recognition_weights would
        params, _ = method.regress(batch["image"])
        rec = method._reconstruction(params, render=False)
        per[mode] = method.losses(batch, rec, {"per": 1.0})["per"]
        if mode == "arcface":  # the input went in warped by its ground-truth landmarks
            from facezoo.data.arcface import warp_to_arcface

            expect = warp_to_arcface(batch["image"], batch["landmarks68"].to(rec.landmarks2d))
            torch.testing.assert_close(seen[0], (expect - 0.5) / 0.5)
    assert seen[0].shape[-2:] == (112, 112) and torch.isfinite(per["arcface"])
    assert not torch.isclose(per["arcface"], per["resize"])


def test_official_preset_and_step_schedule(tiny_method):
    cfg = yaml.safe_load((ZOO / "deep3d-official.yaml").read_text())
    args = dict(cfg["model"]["init_args"])
    assert cfg["data"]["init_args"]["batch_size"] == 32
    assert (args["w_photo"], args["w_tex_coef"], args["w_gamma"], args["lr"]) == (1.92, 0.017, 10.0, 1e-4)
    assert (args["lr_schedule"], args["lr_step_epochs"], args["lr_step_gamma"]) == ("step", 10, 0.2)
    for key in ("morphable_model", "backbone", "image_size", "recognition_weights", "backbone_weights"):
        args.pop(key)
    args.pop("recognition_net")
    method = tiny_method(**args)
    weights = method.loss_weights()
    assert weights == {"photo": 1.92, "lan": 1.6e-3, "per": 0.2, "coef": 3e-4, "tex": 5.0, "gamma": 10.0}
    opt = method.configure_optimizers()
    sched = opt["lr_scheduler"]["scheduler"]
    assert opt["lr_scheduler"]["interval"] == "epoch"
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and (sched.step_size, sched.gamma) == (10, 0.2)
    lrs = []
    for _ in range(21):
        lrs.append(opt["optimizer"].param_groups[0]["lr"])
        opt["optimizer"].step()
        sched.step()
    assert lrs[9] == pytest.approx(1e-4) and lrs[10] == pytest.approx(2e-5) and lrs[20] == pytest.approx(4e-6)
    paper = yaml.safe_load((ZOO / "deep3d.yaml").read_text())["model"]["init_args"]
    assert (paper["w_photo"], paper["w_tex_coef"], paper["w_gamma"]) == (1.9, 0.0017, 0.0)


def test_pinned_previous_photometric_term_is_the_former_formula(batch, tiny_method):
    """``skin_model: rule, photo_region: null`` (the CPU demo's pin) is exactly the former Eq. 2: the whole
    mesh's binary coverage x the paper's threshold attention on the Chai & Ngan rule."""
    from facezoo.losses import photometric_loss
    from facezoo.losses.skin import skin_attention

    method = tiny_method(skin_model="rule", photo_region=None)
    params, _ = method.regress(batch["image"])
    rec = method._reconstruction(params, render=False)
    got = method.losses(batch, rec, {"photo": 1.0})["photo"]
    out = method.renderer(
        rec.vertices, rec.triangles, rec.camera, colors=rec.colours, lighting=params["light"], antialias=False
    )
    attention = skin_attention(SkinClassifier()(batch["image"]))
    torch.testing.assert_close(got, photometric_loss(batch["image"], out.image, out.mask, attention))

"""SIR: the per-sample loss switch of Eq. 9 in one mixed batch, the stages, a few training steps per stage on
synthetic identities, reconstruction and the verification protocol, the zoo configs."""

from pathlib import Path

import pytest
import torch
from facezoo.datamodules import Mixture, SyntheticIdentities, SyntheticPairs
from lightning.pytorch import Trainer

from facezoo.losses import cosface_loss, landmark_norm_loss
from facezoo.methods import SIR

MODEL = "procedural:600:8:4:8"
SIZE = 32
TINY = dict(
    morphable_model=MODEL, image_size=SIZE, depth=4, channels=(4, 4, 8, 8), hidden=8, albedo_dim=8,
    uv_size=32,
    albedo_channels=(8, 8, 8, 8, 8, 8), albedo_fusion=8, confnet_nf=16, confnet_zdim=8, num_identities=6,
    renderer_backend="builtin",
)  # fmt: skip
ZOO = Path(__file__).resolve().parents[2] / "zoo"


def tiny(**kwargs) -> SIR:
    torch.manual_seed(0)
    return SIR(**{**TINY, **kwargs})


def tiny_identities(**kwargs) -> SyntheticIdentities:
    args = dict(morphable_model=MODEL, image_size=SIZE, num_identities=6, images_per_identity=2, p=2, k=2,
                num_val=2, num_test=2, renderer_backend="builtin")  # fmt: skip
    return SyntheticIdentities(**{**args, **kwargs})


def mixed_batch() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(4, 3, SIZE, SIZE, generator=g),
        "landmarks68": torch.rand(4, 68, 2, generator=g) * SIZE,
        "identity": torch.tensor([3, 3, -1, -1]),
        "valid": {"landmarks68": torch.tensor([False, False, True, True]),
                  "identity": torch.tensor([True, True, False, False])},
    }  # fmt: skip


def test_loss_switch_by_label_availability_in_one_mixed_batch():
    method = tiny(stage="mixed", warmup_checkpoint=None).train()
    with torch.no_grad():  # a non-trivial network output (the heads start at zero)
        for p in method.net.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = mixed_batch()
    terms = method.training_losses(batch)
    rec = method._reconstruction(method.net.encode(batch["image"]), render=False)
    # landmarks: rows 2, 3 only; SIR: rows 0, 1 only (independent recomputation on those rows)
    lm = landmark_norm_loss(rec.landmarks2d[2:], batch["landmarks68"][2:], scale=224.0 / SIZE)
    assert float(terms["land"].detach()) == pytest.approx(float(lm.detach()), rel=1e-5)
    cos = cosface_loss(rec.params["id"][:2], method.cosface.weight, torch.tensor([3, 3]), s=64.0, m=0.35)
    assert float(terms["cos"].detach()) == pytest.approx(float(cos.detach()), rel=1e-5)
    # what the placeholder rows hold does not matter
    other = mixed_batch()
    other["landmarks68"][:2] = 1e4
    other["identity"][2:] = 5
    method.centres.centres.zero_()
    terms2 = method.training_losses(other)
    for key in ("land", "cos", "centre", "kl", "pix"):
        assert float(terms2[key].detach()) == pytest.approx(float(terms[key].detach()), rel=1e-5), key
    # the photometric term counts every row; the identity terms reach the identity rows' features only
    ident = rec.params["id"].detach().requires_grad_(True)
    method.cosface(ident, torch.tensor([3, 3, 0, 0]), torch.tensor([True, True, False, False])).backward()
    assert ident.grad[:2].abs().sum() > 0 and ident.grad[2:].abs().sum() == 0
    assert set(terms) >= {"pix", "perc", "regp", "rega", "land", "cos", "centre", "kl", "sir", "total"}


def test_centres_follow_the_identity_rows_and_only_while_training():
    method = tiny(stage="mixed").train()
    with torch.no_grad():
        method.net.encoder.id_tail[-1].bias.copy_(torch.arange(8.0))
    method.training_losses(mixed_batch())
    c = method.centres.centres
    # frontal neutral start: f = 1; class 3 got two rows x = (0..7): delta = 2 (c - x) / 3, c -= 0.5 delta
    assert torch.allclose(c[3], torch.arange(8.0) / 3, atol=1e-5)
    assert c[[0, 1, 2, 4, 5]].abs().sum() == 0
    method.eval()
    method.training_losses(mixed_batch())
    assert torch.allclose(method.centres.centres[3], torch.arange(8.0) / 3, atol=1e-5)


def test_warmup_has_no_identity_terms_and_mixed_loads_the_warmup(tmp_path):
    warm = tiny(stage="warmup")
    terms = warm.training_losses(mixed_batch())
    assert "cos" not in terms and "sir" not in terms
    # the classifier has no gradient in the warm-up: frozen, so that DDP finds no unused parameter
    assert not any(p.requires_grad for p in warm.cosface.parameters())
    torch.save({"state_dict": warm.state_dict()}, tmp_path / "warm.ckpt")
    mixed = tiny(stage="mixed", warmup_checkpoint=str(tmp_path / "warm.ckpt"))
    for name, value in warm.net.state_dict().items():
        assert torch.equal(mixed.net.state_dict()[name], value), name
    assert all(p.requires_grad for p in mixed.cosface.parameters())
    with pytest.raises(ValueError, match="stage"):
        tiny(stage="joint")
    with pytest.raises(ValueError, match="num_identities"):
        tiny(num_identities=1)


def test_reconstruct_and_the_verification_protocol(tmp_path):
    method = tiny().eval()
    out = method.reconstruct({"image": torch.rand(2, 3, 3, SIZE, SIZE)}, render=True)
    assert out.vertices.shape == (6, 600, 3) and out.views == 3 and out.image.shape == (6, 3, SIZE, SIZE)
    # a fresh network starts at the mean face, frontal, centred in the crop
    lm = out.landmarks2d.mean(1)
    assert torch.allclose(lm, torch.full_like(lm, SIZE / 2), atol=1e-3)
    assert torch.allclose(out.params["angles"], torch.zeros_like(out.params["angles"]), atol=1e-6)
    pairs = SyntheticPairs(
        MODEL, image_size=SIZE, num_pairs=20, n_folds=10, batch_size=10, renderer_backend="builtin"
    )
    trainer = Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    result = trainer.test(method, datamodule=pairs, verbose=False)[0]
    assert {"test/params_acc_euclidean", "test/vertices_acc_cosine"} <= set(result)


@pytest.mark.parametrize("stage", ["warmup", "mixed"])
def test_a_few_steps_per_stage_on_synthetic_identities(stage, tmp_path):
    """The mixture of identity-only P x K groups and 3D-labelled faces, as
    zoo/data/synthetic-identities.yaml."""
    ids = tiny_identities()
    faces = tiny_identities(num_identities=8, images_per_identity=1, labelled_fraction=1.0, p=None, k=None,
                            batch_size=4, seed=1)  # fmt: skip
    data = Mixture(
        [ids, faces], mixing="sir", drop=[[], ["identity"]], blocks=2, num_batches=3, num_workers=0, seed=3
    )  # seed 3 draws both members (P(recog) = 8 / 20)
    method = tiny(stage=stage)
    before = {k: v.clone() for k, v in method.net.state_dict().items()}
    trainer = Trainer(max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, limit_val_batches=0, accelerator="cpu",
                      default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(method, datamodule=data)
    assert trainer.global_step == 3
    moved = [k for k, v in method.net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.id_tail") for k in moved) and any(k.startswith("confnet") for k in moved)
    centres_moved = bool(method.centres.centres.abs().sum() > 0)
    assert centres_moved == (stage == "mixed")
    assert all(torch.isfinite(v).all() for v in method.state_dict().values() if v.is_floating_point())


def test_setup_names_the_missing_label():
    ids = tiny_identities()
    trainer = Trainer(max_steps=1, logger=False, enable_progress_bar=False, accelerator="cpu")
    with pytest.raises(ValueError, match="landmarks68"):
        trainer.fit(tiny(stage="warmup"), datamodule=Mixture([ids], drop=[["landmarks68"]], num_workers=0))


def test_zoo_configs_parse_and_instantiate(monkeypatch):
    from lightning.pytorch.cli import LightningCLI

    from facezoo.cli import main

    seen = []
    monkeypatch.setattr(LightningCLI, "_run_subcommand", lambda self, sub: seen.append(self))
    overlay = str(ZOO / "data" / "synthetic-identities.yaml")
    for config, stage in (("sir-warmup.yaml", "warmup"), ("sir.yaml", "mixed")):
        assert main(["fit", "--config", str(ZOO / config), "--config", overlay, "--trainer.logger=false",
                     "--model.depth=4"]) == 0  # fmt: skip
        model, data = seen[-1].model, seen[-1].datamodule
        assert isinstance(model, SIR) and model.stage == stage and model.net.encoder_size == 64
        assert isinstance(data, Mixture) and data.mixing == "sir" and data.drop == [[], ["identity"]]
        assert [m.image_size for m in data.members] == [64, 64]
    import yaml

    cfg = yaml.safe_load((ZOO / "sir.yaml").read_text())
    assert cfg["model"]["init_args"]["depth"] == 64 and cfg["data"]["init_args"]["drop"] == [
        [],
        ["identity", "params"],
    ]

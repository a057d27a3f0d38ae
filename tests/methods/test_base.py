import numpy as np
import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer

from facezoo.methods import build_morphable, vertex_error
from facezoo.methods.base import FaceMethod
from facezoo.morphable.hdf5 import save_model


def test_build_morphable_specs(tmp_path):
    model = build_morphable("procedural:600")
    assert model.n_vertices >= 600 and model.n_id == 80
    path = save_model(model, tmp_path / "m.h5")
    assert torch.equal(build_morphable(str(path)).mean, model.mean)
    assert build_morphable(model) is model
    with pytest.raises(FileNotFoundError, match="procedural"):
        build_morphable(str(tmp_path / "missing.h5"))
    small = build_morphable("procedural:600:10:5:6")
    assert (small.n_id, small.n_exp, small.n_tex) == (10, 5, 6) and small.n_vertices == model.n_vertices
    with pytest.raises(ValueError, match="n_vertices"):
        build_morphable("procedural:big")
    with pytest.raises(ValueError, match="n_vertices"):
        build_morphable("procedural:600:10")


def test_vertex_error_is_similarity_invariant_and_exact():
    torch.manual_seed(1)
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    angle = torch.tensor(0.7, dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
    moved = 1.7 * x @ rot.T + torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)
    assert vertex_error(moved, x).abs().max() < 1e-9
    noisy = x.clone()
    noisy[:, 0] += torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    err = vertex_error(noisy, x)
    # least squares cannot raise the RMS error (sqrt(1/40) unaligned), which bounds the mean error
    assert (err > 0).all() and (err <= (1.0 / 40) ** 0.5 + 1e-9).all()
    # the exact value: an independent Umeyama (numpy SVD) and the MEAN (not RMS) per-vertex distance
    gen = np.random.default_rng(3)
    target = gen.normal(size=(2, 60, 3)) * 30.0
    pred = (
        0.8 * target @ _rot(0.4).T + 5.0 + gen.normal(size=target.shape) * np.linspace(0.1, 3.0, 60)[:, None]
    )
    got = vertex_error(torch.tensor(pred), torch.tensor(target)).numpy()
    for b in range(2):
        aligned = _umeyama_apply(pred[b], target[b])
        d = np.linalg.norm(aligned - target[b], axis=1)
        assert got[b] == pytest.approx(d.mean(), rel=1e-9)
        assert abs(got[b] - np.sqrt((d**2).mean())) > 1e-3  # mean and RMS differ here
    mask = torch.zeros(60, dtype=torch.bool)
    mask[::3] = True  # alignment and mean over the masked vertices only
    d = np.linalg.norm(_umeyama_apply(pred[0, ::3], target[0, ::3]) - target[0, ::3], axis=1)
    assert float(vertex_error(torch.tensor(pred[:1]), torch.tensor(target[:1]), mask)) == pytest.approx(
        d.mean()
    )


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _umeyama_apply(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991): the similarity minimising sum ||s R src + t - dst||^2, applied to ``src``."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(xd.T @ xs / len(src))
    e = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / (xs**2).sum(1).mean()
    return scale * src @ r.T + (mu_d - scale * r @ mu_s)


def test_morphable_model_is_not_in_checkpoints_and_loading_is_strict(tmp_path, tiny_method):
    method = tiny_method()
    keys = list(method.state_dict())
    assert not any(k.startswith("morphable") or "mean" == k.split(".")[-1] for k in keys)
    assert any(k.startswith("rnet.") for k in keys)
    other = tiny_method()
    other.load_state_dict(method.state_dict(), strict=True)
    with pytest.raises(RuntimeError, match="Missing"):
        other.load_state_dict({k: v for k, v in method.state_dict().items() if k != "rnet.fc.bias"})
    method = method.double()
    assert method.morphable.mean.dtype == torch.float64  # externals follow dtype/device moves
    # externals are not submodules: no state, and DDP never sees (nor broadcasts) the model's bases
    assert not any(b is method.morphable.mean for b in method.buffers())
    assert "morphable" not in dict(method.named_modules())
    # a Lightning checkpoint round trip rebuilds the model from the spec and loads strictly
    trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    method = tiny_method()
    trainer.strategy.connect(method)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = type(method).load_from_checkpoint(path, strict=True)
    assert loaded.morphable.n_vertices == method.morphable.n_vertices
    for k, v in method.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_missing_batch_key_fails_with_the_key_and_datamodule(batch, tiny_method, tiny_data):
    method = tiny_method()

    class NoLandmarks(LightningDataModule):
        provides = ("image",)

    class FakeTrainer:
        datamodule = NoLandmarks()

    method._trainer = FakeTrainer()
    with pytest.raises(ValueError, match=r"landmarks68.*NoLandmarks"):
        method.setup("fit")
    with pytest.raises(ValueError, match=r"landmarks68.*NoLandmarks"):
        method.training_step({"image": batch["image"]}, 0)
    method._trainer = None
    assert set(method.required_keys["fit"]) <= set(tiny_data().provides)


def test_base_is_abstract(tiny_method):
    """The hooks are an explicit contract: a method lacking one cannot be instantiated, and the error names
    the missing hooks."""
    assert issubclass(type(tiny_method()), FaceMethod)
    with pytest.raises(TypeError, match="neutral_shape.*reconstruct.*training_losses"):
        FaceMethod("procedural:600", image_size=32)

    class NoNeutral(FaceMethod):
        def reconstruct(self, batch, render=False):
            raise AssertionError

        def training_losses(self, batch):
            raise AssertionError

    with pytest.raises(TypeError, match="neutral_shape"):
        NoNeutral("procedural:600", image_size=32)

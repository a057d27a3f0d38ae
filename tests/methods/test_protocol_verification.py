"""`facezoo test` on verification pairs: both images reconstructed alone, 10-fold accuracy, table and JSON."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import LightningDataModule, Trainer
from torch.utils.data import DataLoader

from facezoo.cli import main
from facezoo.data.sample import collate
from facezoo.methods.base import FaceMethod, linear_neutral_shape
from facezoo.methods.protocols import PROTOCOLS, VerificationProtocol, protocol_for
from facezoo.methods.reconstruction import FaceReconstruction


class ColourCode(FaceMethod):
    """A stub whose identity coefficients are an image's mean colour (x10) and its image-set size: the test
    controls the embeddings through the images."""

    seen_shapes: list = []

    def reconstruct(self, batch, render=False):
        image = batch["image"]
        self.seen_shapes.append(tuple(image.shape))
        n = image.shape[0]
        ident = torch.zeros(n, self.morphable.n_id)
        ident[:, :3] = image.mean((2, 3)) * 10
        v = self.morphable(ident, None)
        return FaceReconstruction(v, self.morphable.triangles, torch.zeros(n, 68, 3), torch.zeros(n, 68, 2),
                                  params={"id": ident})  # fmt: skip

    def neutral_shape(self, rec):
        return linear_neutral_shape(self.morphable, rec)

    def training_losses(self, batch):
        raise NotImplementedError("evaluation-only stub")


class ColourPairs(LightningDataModule):
    """20 pairs in 10 folds; a person is a flat colour; a same pair's second image is brighter by 0.01."""

    protocol = "verification"
    n_folds = 10

    def test_dataloader(self):
        g = torch.Generator().manual_seed(0)
        samples = []
        for k in range(20):
            same = k % 2 == 0
            c1, c2 = torch.rand(3, generator=g), torch.rand(3, generator=g)
            b = c1 + 0.01 if same else c2
            image = torch.stack([c1[:, None, None].expand(3, 16, 16), b[:, None, None].expand(3, 16, 16)])
            samples.append({"image": image, "same": torch.tensor(same), "pair_index": k, "index": k})
        return DataLoader(samples, batch_size=6, collate_fn=collate)


def test_protocol_registry_dispatches_on_the_datamodule():
    assert protocol_for(None) is PROTOCOLS["reconstruction"]
    assert protocol_for(ColourPairs()) is VerificationProtocol

    class Unknown(LightningDataModule):
        protocol = "nope"

    with pytest.raises(ValueError, match="nope"):
        protocol_for(Unknown())


def test_verification_protocol_accuracy_with_known_embeddings(tmp_path, capsys):
    method = ColourCode("procedural:600", image_size=16)
    ColourCode.seen_shapes.clear()
    trainer = Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path, accelerator="cpu")
    trainer.test(method, datamodule=ColourPairs())
    assert all(len(s) == 4 for s in ColourCode.seen_shapes)  # images reconstructed one by one, not as sets
    assert ColourCode.seen_shapes[0][0] == 12  # 6 pairs x 2 images
    out = capsys.readouterr().out
    assert "10-fold verification accuracy" in out and "params" in out and "vertices" in out
    results = json.loads((tmp_path / "test_results.json").read_text())
    assert results["protocol"] == "verification"
    m = results["metrics"]
    # same pairs differ by 0.1 in embedding, different ones by far more: every fold is perfect
    for key in ("params_acc_euclidean", "vertices_acc_euclidean", "params_acc_cosine"):
        assert m[key] == 1.0 and m[f"{key}_std"] == 0.0


def test_verification_protocol_rejects_non_pairs():
    method = ColourCode("procedural:600", image_size=16)
    runner = VerificationProtocol(method, ColourPairs())
    with pytest.raises(ValueError, match="pair_index"):
        runner.update(
            method, {"image": torch.zeros(2, 2, 3, 16, 16), "same": torch.ones(2, dtype=torch.bool)}
        )
    with pytest.raises(ValueError, match=r"pairs \[B,2,3,H,W\]"):
        runner.update(
            method, {"image": torch.zeros(2, 3, 16, 16), "same": torch.ones(2), "pair_index": [0, 1]}
        )


def test_facezoo_test_on_synthetic_pairs(tmp_path, capsys):
    """End to end through the command line. An untrained Deep3DFace regresses the same (zero) identity for
    every image, so every distance is 0 and no threshold separates the pairs: exactly chance (50 %)."""
    main([
        "test", "--model=facezoo.methods.Deep3DFace", "--model.morphable_model=procedural:600",
        "--model.backbone=resnet18", "--model.backbone_kwargs={width: 8}", "--model.image_size=32",
        "--data=facezoo.datamodules.SyntheticPairs", "--data.morphable_model=procedural:600",
        "--data.image_size=32", "--data.num_pairs=20", "--data.batch_size=10",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}",
    ])  # fmt: skip
    assert "euclidean acc (%)" in capsys.readouterr().out
    m = json.loads((tmp_path / "test_results.json").read_text())["metrics"]
    assert sorted(m) == sorted(
        f"{e}_acc_{d}{s}"
        for e in ("params", "vertices")
        for d in ("euclidean", "cosine")
        for s in ("", "_std")
    )
    assert m["params_acc_euclidean"] == 0.5 and m["vertices_acc_cosine"] == 0.5

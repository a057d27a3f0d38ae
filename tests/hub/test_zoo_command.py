"""`facezoo zoo list | download | verify | build | publish` and the ModelCard callback, end to end (tiny)."""

from __future__ import annotations

import hashlib
import json

import torch
import yaml

import facezoo
from facezoo.cli import main
from facezoo.hub.index import built_path

TINY_FIT = [
    "--model.init_args.morphable_model=procedural:600:4:2:8",
    "--data.init_args.morphable_model=procedural:600:4:2:8",
    "--model.init_args.image_size=32", "--data.init_args.image_size=32", "--data.init_args.batch_size=4",
    "--model.init_args.backbone=resnet18", "--model.init_args.backbone_kwargs={width: 8}",
    "--data.init_args.num_train=8", "--data.init_args.num_val=4", "--data.init_args.num_test=4",
]  # fmt: skip
TINY_DEMO = {
    "trainer.max_steps": 3, "model.init_args.morphable_model": "procedural:600:4:2:8",
    "data.init_args.morphable_model": "procedural:600:4:2:8", "model.init_args.image_size": 32,
    "data.init_args.image_size": 32, "model.init_args.backbone_kwargs": "{width: 8}",
    "data.init_args.batch_size": 8, "data.init_args.num_train": 64, "data.init_args.num_test": 8,
}  # fmt: skip


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_model_card_beside_each_checkpoint_then_publish_and_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fit = ["fit", "--config", "zoo/deep3d.yaml", "--config", "zoo/data/synthetic.yaml", *TINY_FIT,
           "--trainer.max_steps=2", "--trainer.num_sanity_val_steps=0", "--trainer.val_check_interval=2",
           "--trainer.limit_val_batches=1",
           "--trainer.callbacks+=facezoo.callbacks.ModelCard"]  # fmt: skip
    assert main(fit) == 0
    (ckpt,) = tmp_path.glob("runs/lightning_logs/version_0/checkpoints/*.ckpt")
    card = json.loads(ckpt.with_name(ckpt.stem + ".card.json").read_text())
    assert card["sha256"] == sha256(ckpt) and card["checkpoint"] == ckpt.name
    assert card["method"] == "facezoo.methods.deep3d.Deep3DFace" and card["global_step"] == 2
    assert card["hyper_parameters"]["morphable_model"] == "procedural:600:4:2:8"
    assert (
        card["data"]["class"].endswith("SyntheticFaces")
        and card["data"]["hyper_parameters"]["num_train"] == 8
    )
    assert "train/loss" in card["metrics"] and "max_steps: 2" in card["config"]
    assert set(card["versions"]) == {"facezoo", "torch", "lightning", "python"}

    # test with the checkpoint: the card gains the test metrics
    test = ["test", "--config", "zoo/deep3d.yaml", "--config", "zoo/data/synthetic.yaml", *TINY_FIT,
            f"--ckpt_path={ckpt}", "--trainer.callbacks+=facezoo.callbacks.ModelCard"]  # fmt: skip
    assert main(test) == 0
    card = json.loads(ckpt.with_name(ckpt.stem + ".card.json").read_text())
    assert card["test_metrics"] and card["metrics"]["train/loss"]

    # publish: a slim hash-named copy and the entry to paste, which validates once filled in
    capsys.readouterr()
    assert main(["zoo", "publish", str(ckpt), "--name", "deep3d.tiny", "-o", "dist"]) == 0
    printed = capsys.readouterr().out
    (copy,) = tmp_path.glob("dist/deep3d.tiny-*.ckpt")
    digest = sha256(copy)
    assert copy.name == f"deep3d.tiny-{digest[:8]}.ckpt"
    assert "optimizer_states" in torch.load(ckpt, weights_only=True)
    assert "optimizer_states" not in torch.load(copy, weights_only=True)
    (entry,) = yaml.safe_load(printed[printed.index("- name") :])
    assert entry["sha256"] == digest and entry["url"] == copy.name and entry["method"] == "Deep3DFace"
    entry |= {"config": ["zoo/deep3d.yaml", "zoo/data/synthetic.yaml"], "synthetic": True, "trained_on": "x",
              "licence": "Apache-2.0",
              "metrics": {"nme": {"value": 1, "dataset": "x", "protocol": "y"}}}  # fmt: skip
    (tmp_path / "dist" / "index.yaml").write_text(yaml.safe_dump({"checkpoints": [entry]}))
    model = facezoo.load_pretrained("deep3d.tiny", index=tmp_path / "dist" / "index.yaml", progress=False)
    assert torch.equal(
        model.rnet.fc.weight, torch.load(ckpt, weights_only=True)["state_dict"]["rnet.fc.weight"]
    )

    # verify checks files against their cards
    assert main(["zoo", "verify", str(copy)]) == 0
    flip_a_byte(copy)
    assert main(["zoo", "verify", str(copy)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_build_download_list_verify(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEZOO_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    index = tmp_path / "index.yaml"
    entry = {
        "name": "deep3d.tiny-demo", "method": "Deep3DFace",
        "config": ["zoo/deep3d.yaml", "zoo/data/synthetic.yaml", "zoo/demo/deep3d-cpu.yaml"],
        "url": None, "sha256": None, "synthetic": True, "trained_on": "3 steps", "licence": "Apache-2.0",
        "build": {"command": "demo", "minutes": 1},
        "metrics": {"vertex_error_mm": {"value": 2.0, "tolerance": 100.0, "dataset": "x", "protocol": "y"},
                    "nme": {"value": 0.0, "tolerance": 1e-9, "dataset": "x", "protocol": "y"}},
    }  # fmt: skip
    index.write_text(yaml.safe_dump({"checkpoints": [entry]}))
    assert main(["zoo", "list", "--index", str(index)]) == 0
    assert "not built" in capsys.readouterr().out
    assert main(["zoo", "download", "deep3d.tiny-demo", "--index", str(index)]) == 2  # built, not downloaded
    assert "facezoo zoo build deep3d.tiny-demo" in capsys.readouterr().err

    overrides = [a for k, v in TINY_DEMO.items() for a in ("--set", f"{k}={v}")]
    # the nme can't be exactly 0: the build is reported as not reproduced (status 1), the file is kept
    assert main(["zoo", "build", "deep3d.tiny-demo", "--index", str(index), *overrides]) == 1
    out = capsys.readouterr().out
    assert "OUT OF TOLERANCE" in out and out.count(" ok") == 1
    path = built_path("deep3d.tiny-demo")
    card = json.loads(path.with_name(path.stem + ".card.json").read_text())
    assert card["sha256"] == sha256(path) and card["index_check"]["vertex_error_mm"]["ok"] is True
    assert card["index_check"]["nme"]["ok"] is False
    metrics = json.loads((tmp_path / "runs" / "zoo" / "deep3d.tiny-demo" / "metrics.json").read_text())
    assert card["metrics"]["nme"] == metrics["after"]["nme"]  # the card reports the run's own numbers
    slim = {"state_dict", "hyper_parameters", "epoch", "global_step", "pytorch-lightning_version", "facezoo"}
    assert set(torch.load(path, weights_only=True)) <= slim

    model = facezoo.load_pretrained("deep3d.tiny-demo", index=index)
    assert model.morphable.n_vertices == 600 and not model.training
    assert main(["zoo", "list", "--index", str(index)]) == 0
    assert "built" in capsys.readouterr().out.split("deep3d.tiny-demo", 1)[1].split("\n")[0]
    assert main(["zoo", "verify", "--index", str(index)]) == 0
    flip_a_byte(path)
    assert main(["zoo", "verify", "--index", str(index)]) == 1

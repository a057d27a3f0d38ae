"""Kill-and-resume: a fit killed mid-epoch (the process exits without teardown) and resumed from ``last.ckpt``
ends with the same weights and metrics as an uninterrupted fit; checkpoint writes are atomic; samplers resume
their position."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from facezoo.callbacks.resume import AtomicCheckpointIO, ResumeState, get_rng_states, set_rng_states

from facezoo.data.samplers import (
    IdentityBalancedSampler,
    MixtureSampler,
    ResumableDataLoader,
    ShardedRandomSampler,
)

# A tiny Deep3DFace fit on the procedural model: 8 training faces, batches of 2 -> 4 steps per epoch.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from lightning.pytorch import Callback, Trainer, seed_everything
    from facezoo.callbacks.resume import AtomicCheckpointIO, ResumableCheckpoint
    from facezoo.datamodules import SyntheticFaces
    from facezoo.methods import Deep3DFace

    out, max_steps, kill_at, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"

    class Record(Callback):
        # per step: the indices trained on and the loss (appended, so the killed run keeps what it did)
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            with open(os.path.join(out, "steps.jsonl"), "a") as f:
                row = {"step": trainer.global_step, "epoch": trainer.current_epoch,
                       "index": batch["index"].tolist(), "loss": float(outputs["loss"]),
                       "rand": float(torch.rand(()))}  # the global RNG as the training step sees it
                f.write(json.dumps(row) + "\\n")

    class Kill(Callback):
        # a kill without teardown: after step `kill_at` has trained (before its checkpoint is written)
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == kill_at:
                os._exit(17)

    seed_everything(0)
    # cache=False: a cached synthetic face is rendered with the batch it first came in, and its pixels
    # depend on
    # that batch at float precision, so a resumed run (whose cache starts empty) would differ by ~1e-5
    dm = SyntheticFaces("procedural:600", image_size=32, batch_size=2, num_train=8, num_val=4, num_test=4,
                        cache=False, num_workers=0)
    model = Deep3DFace("procedural:600", backbone="resnet18", backbone_kwargs={"width": 8}, image_size=32,
                       lr=2e-3, lr_schedule="cosine", renderer_backend="builtin")
    ckpt = ResumableCheckpoint(dirpath=os.path.join(out, "checkpoints"), save_top_k=0, every_n_train_steps=1)
    callbacks = [Record(), ckpt] + ([Kill()] if kill_at >= 0 else [])
    trainer = Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, limit_val_batches=0,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
                      default_root_dir=out)
    trainer.fit(model, dm, ckpt_path="last" if resume else None)
    assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO
    evaluator = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    metrics = evaluator.validate(model, dm, verbose=False)[0]
    torch.save(model.state_dict(), os.path.join(out, "final.pt"))
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({k: float(v) for k, v in metrics.items()}, f)
    """
)


def _run(out, max_steps, kill_at=-1, resume=False):
    out.mkdir(parents=True, exist_ok=True)
    script = out.parent / "child.py"
    script.write_text(CHILD)
    args = [sys.executable, str(script), str(out), str(max_steps), str(kill_at), "1" if resume else "0"]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def _steps(out):
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_fit_equals_the_uninterrupted_fit(tmp_path):
    n, kill_at = 10, 6  # 4 steps per epoch: killed after the 2nd step of epoch 1, before its checkpoint
    straight = _run(tmp_path / "straight", n)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _run(tmp_path / "resumed", n, kill_at=kill_at)
    assert killed.returncode == 17, killed.stderr[-3000:]  # really killed: no teardown, no final files
    assert not (tmp_path / "resumed" / "final.pt").exists()
    ckpt_dir = tmp_path / "resumed" / "checkpoints"
    assert [p.name for p in ckpt_dir.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    last = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == kill_at - 1  # the step-6 checkpoint was never written
    resumed = _run(tmp_path / "resumed", n, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _steps(tmp_path / "straight"), _steps(tmp_path / "resumed")
    assert [r["step"] for r in a] == list(range(1, n + 1))
    # the resumed process redid step 6 (lost with the kill) and continued: same batches, epochs, losses, RNG
    redo = [r for r in b if r["step"] >= kill_at][1:]  # drop the killed process's own step 6
    assert [r["step"] for r in redo] == list(range(kill_at, n + 1))
    for x, y in zip(a[kill_at - 1 :], redo, strict=True):
        assert (x["epoch"], x["index"]) == (y["epoch"], y["index"])
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5)
        assert y["rand"] == x["rand"]
    wa = torch.load(tmp_path / "straight" / "final.pt", weights_only=True)
    wb = torch.load(tmp_path / "resumed" / "final.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6, msg=k)
    ma = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert ma.keys() == mb.keys() and ma
    for k in ma:
        assert mb[k] == pytest.approx(ma[k], rel=1e-5), k


def test_atomic_checkpoint_io_keeps_the_previous_file_when_a_save_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def broken_save(obj, f, *args, **kwargs):  # a save that dies half-way through writing
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"].item() == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    io.save_checkpoint({"step": torch.tensor(3)}, path)
    assert torch.load(path, weights_only=True)["step"].item() == 3
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, path, storage_options={"x": 1})


def test_rng_states_round_trip_and_load_without_pickle(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    state = get_rng_states()
    torch.save({"rng": state}, tmp_path / "s.pt")
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_states(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])  # plain tensors and numbers
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.testing.assert_close(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    assert again[2] == first[2]
    cb = ResumeState()
    saved = cb.state_dict()
    expected = torch.rand(2)
    cb.load_state_dict(saved)
    cb.on_train_start(None, None)
    torch.testing.assert_close(torch.rand(2), expected)


def _consume(loader, batches):
    it = iter(loader)
    return [next(it).tolist() for _ in range(batches)]


@pytest.mark.parametrize(
    "make",
    [
        lambda world, rank: ShardedRandomSampler(range(40), world, rank, seed=3),
        lambda world, rank: IdentityBalancedSampler([i // 4 for i in range(40)], 2, 2, world, rank, seed=3),
        lambda world, rank: MixtureSampler([25, 15], [0.5, 0.5], 40, world, rank, seed=3),
    ],
    ids=["sharded", "identity_balanced", "mixture"],
)
def test_loader_resumes_mid_epoch_with_the_same_order(make):
    """Interrupted after 3 batches of epoch 2, a fresh loader continues with exactly the remaining batches,
    and
    the next epoch is complete again."""
    full = ResumableDataLoader(range(40), batch_size=4, sampler=make(1, 0))
    full.sampler.set_epoch(2)
    epoch2 = [b.tolist() for b in full]
    full.sampler.set_epoch(3)
    epoch3 = [b.tolist() for b in full]
    assert epoch2 != epoch3 and len(epoch2) == len(full)

    a = ResumableDataLoader(range(40), batch_size=4, sampler=make(1, 0))
    a.sampler.set_epoch(2)
    assert _consume(a, 3) == epoch2[:3]
    state = a.state_dict()
    assert state["batches"] == 3 and state["sampler"]["epoch"] == 2

    b = ResumableDataLoader(range(40), batch_size=4, sampler=make(1, 0))
    b.load_state_dict(state)
    b.sampler.set_epoch(2)  # what Lightning does at the start of the resumed epoch
    assert [x.tolist() for x in b] == epoch2[3:]
    assert b.state_dict()["batches"] == len(epoch2)  # a save at the end of the resumed epoch counts all of it
    b.sampler.set_epoch(3)
    assert [x.tolist() for x in b] == epoch3
    assert _consume(b, 2) == epoch3[:2] and b.state_dict()["batches"] == 2  # a new epoch counts from 0


def test_sharded_sampler_resume_on_another_world_size_skips_the_global_prefix():
    """Two ranks each used 3 indices (6 of the global order); resumed on three ranks, each skips 2:
    together the
    rest of the epoch is exactly the global order minus those 6."""
    old = [ShardedRandomSampler(range(24), 2, r, seed=1) for r in range(2)]
    global_order = [i for pair in zip(*(list(s) for s in old)) for i in pair]
    seen = set(global_order[:6])
    state = old[0].state_dict(position=3)
    rest = []
    for r in range(3):
        s = ShardedRandomSampler(range(24), 3, r, seed=1)
        s.load_state_dict(state)
        rest += list(s)
    assert sorted(rest) == sorted(set(range(24)) - seen)
    with pytest.warns(UserWarning, match="seed 2 from a checkpoint made with seed 1"):
        ShardedRandomSampler(range(24), 1, 0, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        ShardedRandomSampler(range(24), 1, 0).load_state_dict({"epoch": 0})


@pytest.mark.slow
def test_cli_resume_overlay_continues_from_the_newest_last_checkpoint(tmp_path, caplog):
    """`facezoo fit ... --config zoo/resume.yaml`, then the same with `--ckpt_path last`: the second run
    logs into a new version folder, finds the first run's last.ckpt there and continues from its step."""
    import logging

    from facezoo.cli import main

    args = ["fit"]
    for config in (
        "zoo/deep3d.yaml",
        "zoo/data/synthetic.yaml",
        "zoo/demo/deep3d-cpu.yaml",
        "zoo/resume.yaml",
    ):
        args += ["--config", config]
    args += [
        "--model.init_args.morphable_model=procedural:600", "--data.init_args.morphable_model=procedural:600",
        "--model.init_args.image_size=32", "--data.init_args.image_size=32", "--data.init_args.batch_size=2",
        "--data.init_args.num_train=6", "--model.init_args.backbone_kwargs={width: 8}",
        "--trainer.callbacks.init_args.every_n_train_steps=2", "--trainer.enable_progress_bar=false",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.log_every_n_steps=1",
    ]  # fmt: skip
    assert main([*args, "--trainer.max_steps=4"]) == 0
    first = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(first, map_location="cpu", weights_only=False)["global_step"] == 4
    with caplog.at_level(logging.INFO):
        assert main([*args, "--trainer.max_steps=6", "--ckpt_path=last"]) == 0
    assert any(str(first) in r.getMessage() and "Restor" in r.getMessage() for r in caplog.records)
    second = tmp_path / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt"
    assert torch.load(second, map_location="cpu", weights_only=False)["global_step"] == 6
    steps = (tmp_path / "lightning_logs" / "version_1" / "metrics.csv").read_text().splitlines()
    header = steps[0].split(",")
    logged = {int(row.split(",")[header.index("step")]) for row in steps[1:]}
    assert min(logged) >= 4  # only steps 5 and 6 were trained (logged as 4 and 5, Lightning counts from 0)

"""Staged training in the method base: stage names, earlier-stage checkpoints (safe, strict), freezing."""

from __future__ import annotations

import pathlib

import pytest
import torch

from facezoo.methods.stages import load_submodules, read_checkpoint


class Payload:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.target, "code ran"))


def test_stage_is_checked_against_the_class_stages(tiny_method):
    assert tiny_method().stage == "rnet"
    with pytest.raises(ValueError, match=r"stage: expected one of \['rnet', 'cnet'\], got 'both'"):
        tiny_method(stage="both")


def test_cnet_without_rnet_checkpoint_starts_fresh_with_a_warning(tiny_method):
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="no rnet_checkpoint given.*fresh"):
        cnet = tiny_method(stage="cnet")
    torch.manual_seed(0)
    rnet = tiny_method()
    for k, v in rnet.rnet.state_dict().items():  # same initialisation order and RNG use as an R-Net
        assert torch.equal(v, cnet.rnet.state_dict()[k]), k
    assert not any(p.requires_grad for p in cnet.rnet.parameters())
    with pytest.raises(FileNotFoundError, match="rnet_checkpoint: no file at"):
        tiny_method(stage="cnet", rnet_checkpoint="/nonexistent/rnet.ckpt")  # a typo is not "no file given"


def test_a_pickle_payload_in_rnet_checkpoint_never_runs(tmp_path, tiny_method):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tiny_method().state_dict(), "hyper_parameters": {"x": Payload(target)}}, path)
    with pytest.raises(ValueError, match=r"rnet_checkpoint: .*evil.ckpt.*refused"):
        tiny_method(stage="cnet", rnet_checkpoint=str(path))
    assert not target.exists()
    with pytest.raises(ValueError, match="refused"):
        read_checkpoint(path, "init_checkpoint")
    assert not target.exists()
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load runs it
    assert target.read_text() == "code ran"


def test_unreadable_checkpoints_name_the_file(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"vmn_checkpoint: .*notes.ckpt is not a readable torch checkpoint"):
        read_checkpoint(text, "vmn_checkpoint")
    listed = tmp_path / "list.ckpt"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match="holds a list"):
        read_checkpoint(listed, "vmn_checkpoint")


def test_loading_is_strict_and_names_the_keys(tmp_path, tiny_method):
    rnet = tiny_method()
    state = rnet.state_dict()
    path = tmp_path / "rnet.ckpt"
    torch.save({"state_dict": {k: v for k, v in state.items() if k != "rnet.fc.bias"}}, path)
    with pytest.raises(ValueError, match=r"missing \[fc.bias\], unexpected \[\]"):
        tiny_method(stage="cnet", rnet_checkpoint=str(path))
    torch.save({"state_dict": {**state, "rnet.extra": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=r"unexpected \[extra\]"):
        tiny_method(stage="cnet", rnet_checkpoint=str(path))
    wider = tiny_method(backbone_kwargs={"width": 16})
    torch.save({"state_dict": wider.state_dict()}, path)
    with pytest.raises(ValueError, match=r"shapes differ.*conv1.weight: \(16, 3, 7, 7\) vs \(8, 3, 7, 7\)"):
        tiny_method(stage="cnet", rnet_checkpoint=str(path))
    with pytest.raises(ValueError, match=r"no 'rnet\.\*' weights"):
        load_submodules({"other.w": torch.zeros(1)}, {"rnet": rnet.rnet}, source="x")


def test_frozen_modules_stay_in_eval_and_keep_batchnorm_statistics(tiny_method, batch):
    with pytest.warns(UserWarning):
        cnet = tiny_method(stage="cnet")
    bn = cnet.rnet.bn1
    before = bn.running_mean.clone()
    cnet.train()
    assert cnet.training and cnet.cnet.training and not cnet.rnet.training
    assert not any(m.training for m in cnet.rnet.modules())
    sets = torch.stack([batch["image"][:3]] * 2)  # [2,3,3,H,W]
    cnet.regress(sets)
    assert torch.equal(bn.running_mean, before)  # statistics did not move in a training-mode forward
    cnet.eval().train()  # survives any number of mode switches
    assert not cnet.rnet.training
    # an R-Net is not frozen: its BatchNorm trains
    rnet = tiny_method().train()
    assert rnet.rnet.training and all(p.requires_grad for p in rnet.rnet.parameters())

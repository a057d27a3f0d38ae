"""deep3d-official: Deep3DFaceRecon_pytorch's epoch_20.pth into a facezoo Deep3DFace checkpoint.

The official state dict is built here from their public code (models/networks.py ``ReconNetWrapper``: a
torchvision-layout ResNet-50 without ``fc`` under ``backbone.``, heads ``final_layers.0..6`` = conv1x1 to
80, 64, 80, 3, 27, 2, 1 outputs; ``BaseModel.save_networks`` stores it under ``net_recon``), and the reference
output is their forward written out functionally: the imported facezoo model must give the same 257 numbers,
split as the official code splits them (``compute_color`` adds init_lit 0.8 to gamma[:, c, 0]).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import facezoo
from facezoo.cli import main
from facezoo.hub.importers import import_deep3d_official

HEADS = (80, 64, 80, 3, 27, 2, 1)
STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # ResNet-50: planes, blocks, stride
MODEL_80_64_80 = "procedural:600:80:64:80"


def _bn(state, prefix, n, g):
    state[f"{prefix}.weight"] = 1 + 0.1 * torch.randn(n, generator=g)
    state[f"{prefix}.bias"] = 0.1 * torch.randn(n, generator=g)
    state[f"{prefix}.running_mean"] = 0.1 * torch.randn(n, generator=g)
    state[f"{prefix}.running_var"] = 0.5 + torch.rand(n, generator=g)
    state[f"{prefix}.num_batches_tracked"] = torch.tensor(1000)


def _conv(state, key, shape, g):
    fan_out = shape[0] * shape[2] * shape[3]
    state[key] = torch.randn(*shape, generator=g) * (2.0 / fan_out) ** 0.5


def official_state_dict(seed=0):
    """net_recon's keys and shapes as the official ReconNetWrapper('resnet50') has them, random values."""
    g = torch.Generator().manual_seed(seed)
    s = {}
    _conv(s, "backbone.conv1.weight", (64, 3, 7, 7), g)
    _bn(s, "backbone.bn1", 64, g)
    inplanes = 64
    for li, (planes, blocks, _) in enumerate(STAGES, start=1):
        for b in range(blocks):
            p = f"backbone.layer{li}.{b}"
            _conv(s, f"{p}.conv1.weight", (planes, inplanes, 1, 1), g)
            _bn(s, f"{p}.bn1", planes, g)
            _conv(s, f"{p}.conv2.weight", (planes, planes, 3, 3), g)
            _bn(s, f"{p}.bn2", planes, g)
            _conv(s, f"{p}.conv3.weight", (planes * 4, planes, 1, 1), g)
            _bn(s, f"{p}.bn3", planes * 4, g)
            if b == 0:
                _conv(s, f"{p}.downsample.0.weight", (planes * 4, inplanes, 1, 1), g)
                _bn(s, f"{p}.downsample.1", planes * 4, g)
            inplanes = planes * 4
    for k, n in enumerate(HEADS):
        s[f"final_layers.{k}.weight"] = 0.05 * torch.randn(n, 2048, 1, 1, generator=g)
        s[f"final_layers.{k}.bias"] = 0.1 * torch.randn(n, generator=g)
    return s


def official_forward(s, x):
    """ReconNetWrapper.forward (eval mode), functionally, in float64."""
    s = {k: v.double() for k, v in s.items()}

    def bn(t, p):
        stats = s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"]
        return F.batch_norm(t, *stats, training=False, eps=1e-5)

    x = x.double()
    x = F.relu(bn(F.conv2d(x, s["backbone.conv1.weight"], stride=2, padding=3), "backbone.bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for li, (_, blocks, stride) in enumerate(STAGES, start=1):
        for b in range(blocks):
            p = f"backbone.layer{li}.{b}"
            st = stride if b == 0 else 1
            out = F.relu(bn(F.conv2d(x, s[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, s[f"{p}.conv2.weight"], stride=st, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, s[f"{p}.conv3.weight"]), f"{p}.bn3")
            idt = (
                bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=st), f"{p}.downsample.1")
                if b == 0
                else x
            )
            x = F.relu(out + idt)
    x = F.adaptive_avg_pool2d(x, 1)
    heads = [
        F.conv2d(x, s[f"final_layers.{k}.weight"], s[f"final_layers.{k}.bias"]) for k in range(len(HEADS))
    ]
    return torch.flatten(torch.cat(heads, dim=1), 1)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    state = official_state_dict()
    path = tmp_path_factory.mktemp("official") / "epoch_20.pth"
    # as BaseModel.save_networks writes it: the network plus the optimiser state
    torch.save(
        {"net_recon": state, "opt_00": {"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]}}, path
    )
    return path, state


def test_import_gives_the_official_outputs_split_as_the_official_code(official, tmp_path):
    path, state = official
    out = import_deep3d_official(path, tmp_path / "deep3d-official.ckpt")
    model = facezoo.load_pretrained(out, morphable_model=MODEL_80_64_80)
    assert model.sizes == (80, 64, 80, 3, 27, 3) and not model.training
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    ref = official_forward(state, x)
    with torch.no_grad():
        raw = model.rnet(x)
        params = model.decode(raw)
    scale = ref.abs().max()
    # the official split (bfm.split_coeff): id 80 | exp 64 | tex 80 | angle 3 | gamma 27 | trans 3
    names = ("id", "exp", "tex", "angles", "gamma", "translation")
    expected = dict(zip(names, ref.split((80, 64, 80, 3, 27, 3), dim=1), strict=True))
    lit = torch.zeros(27, dtype=torch.float64)
    lit[[0, 9, 18]] = 0.8  # compute_color: gamma.reshape(B, 3, 9) + init_lit on coefficient 0 of each channel
    expected["light"] = expected.pop("gamma") + lit
    for name, value in expected.items():
        torch.testing.assert_close(params[name].double(), value, atol=1e-4 * scale, rtol=1e-4, msg=name)
    # BatchNorm running statistics came across too (eval mode uses them)
    assert torch.equal(model.rnet.bn1.running_var, state["backbone.bn1.running_var"])


def test_the_command_line_and_the_card(official, tmp_path, capsys):
    path, _ = official
    out = tmp_path / "d3.ckpt"
    assert main(["zoo", "import", "deep3d-official", str(path), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["hyper_parameters"]["morphable_model"] == "models/bfm09_deep3d.h5"
    assert set(ckpt) == {"state_dict", "hyper_parameters", "pytorch-lightning_version", "facezoo"}
    import json

    card = json.loads((tmp_path / "d3.card.json").read_text())
    assert card["source"] == "epoch_20.pth" and len(card["sha256"]) == 64
    # without the converted BFM the load names the conversion
    with pytest.raises(FileNotFoundError, match="bfm-deep3d"):
        facezoo.load_pretrained(out)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("final_layers.6.bias"), "final_layers.6 .tz, 1 outputs. is missing"),
        (lambda s: s.update({"final_layers.0.weight": torch.zeros(81, 2048, 1, 1)}), r"\(80, 2048, 1, 1\)"),
        (lambda s: s.pop("backbone.layer3.5.conv2.weight"), "missing keys .1.: layer3.5.conv2.weight"),
        (
            lambda s: s.update({"backbone.fc.weight": torch.zeros(1000, 2048)}),
            "unexpected keys: .'backbone.fc.weight'.",
        ),
    ],
)
def test_wrong_files_are_refused_key_by_key(tmp_path, edit, match):
    state = official_state_dict()
    edit(state)
    torch.save({"net_recon": state}, tmp_path / "epoch_20.pth")
    with pytest.raises(ValueError, match=match):
        import_deep3d_official(tmp_path / "epoch_20.pth", tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()

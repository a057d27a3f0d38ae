"""Shapes, parameter counts, gradients and input validation for every registered network."""

from __future__ import annotations

import pytest
import torch

import facezoo.nn as fnn

# name -> (config overrides for a tiny instance, input factory, expected output shapes)
TINY = {
    "resnet18": (dict(width=8, num_outputs=10), lambda: torch.rand(2, 3, 64, 64), {"out": (2, 10)}),
    "resnet34": (
        dict(width=8, layers=(1, 1, 1, 1), num_outputs=5), lambda: torch.rand(2, 3, 32, 32), {"out": (2, 5)}
    ),
    "resnet50": (dict(width=8, layers=(1, 1, 1, 1)), lambda: torch.rand(2, 3, 64, 64), {"out": (2, 1000)}),
    "deep3d_rnet": (dict(width=8, layers=(1, 2, 1, 1)), lambda: torch.rand(2, 3, 64, 64), {"out": (2, 239)}),
    "deep3d_cnet": (
        dict(stage1_channels=32, pooled_dim=64, conv_channels=(16, 16, 16), hidden=32),
        lambda: (torch.rand(2, 32, 16, 16), torch.rand(2, 64)),
        {"out": (2, 80)},
    ),
    "iresnet50": (
        dict(layers=(1, 1, 2, 1), width=8, input_size=32), lambda: torch.rand(2, 3, 32, 32), {"out": (2, 512)}
    ),
    "iresnet100": (
        dict(layers=(1, 1, 1, 1), width=8, input_size=32, num_features=64),
        lambda: torch.rand(2, 3, 32, 32),
        {"out": (2, 64)},
    ),
    "mmface_vmn": (
        dict(features=32, depth=2, out_channels=16, volume_size=32),
        lambda: torch.rand(2, 3, 64, 64),
        {"0": (2, 16, 32, 32), "1": (2, 16, 32, 32)},
    ),
    "hourglass": (
        dict(features=32, depth=2, out_channels=5), lambda: torch.rand(2, 3, 64, 64), {"0": (2, 5, 16, 16)}
    ),
    "mmface_pmn": (
        dict(channels=(4, 8, 8, 8, 16), pool_size=2, hidden=32),
        lambda: torch.rand(2, 32, 32, 32),
        {"id": (2, 199), "exp": (2, 29), "pose": (2, 6)},
    ),
    "sphereface64": (
        dict(units=(1, 1, 1, 1), channels=(8, 8, 16, 16), input_size=(32, 32), embedding=16),
        lambda: torch.rand(2, 3, 32, 32),
        {"out": (2, 16)},
    ),
    "sphereface20": (dict(channels=(8, 8, 16, 16)), lambda: torch.rand(2, 3, 112, 96), {"out": (2, 512)}),
    "sir_encoder": (
        dict(units=(1, 1, 1, 1), channels=(8, 8, 16, 16), input_size=(32, 32), hidden=16),
        lambda: torch.rand(2, 3, 32, 32),
        {"id": (2, 199), "tex": (2, 512), "exp": (2, 29), "pose": (2, 7), "light": (2, 27)},
    ),
    "sir_confnet": (
        dict(nf=16, zdim=16), lambda: torch.rand(2, 3, 64, 64), {"0": (2, 1, 64, 64), "1": (2, 1, 16, 16)}
    ),
    "sir_albedo_decoder": (
        dict(uv_size=(64, 64), channels=(16, 16, 8, 8, 8, 8), latent_dim=24, fusion_channels=8),
        lambda: torch.randn(2, 24),
        {"out": (2, 3, 64, 64)},
    ),
    "vgg16": (dict(width_divisor=16), lambda: torch.rand(2, 3, 32, 32), {"out": (2, 1000)}),
    "vgg16_features": (dict(width_divisor=16), lambda: torch.rand(2, 3, 32, 32), {"out": (2, 32)}),
    "vggface": (dict(width_divisor=16, depth=11), lambda: torch.rand(2, 3, 32, 32), {"out": (2, 2622)}),
    "mvfnet": (
        dict(width_divisor=16, hidden=32),
        lambda: torch.rand(2, 3, 3, 32, 32),
        {"id": (2, 199), "exp": (2, 29), "pose": (2, 3, 6)},
    ),
    "pwcnet": (
        dict(), lambda: (torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)), {"out": (2, 2, 64, 64)}
    ),
    "nonlinear3dmm_encoder": (
        dict(input_size=32, channels=(8,) * 13, shape_dim=16, albedo_dim=12),
        lambda: torch.rand(2, 3, 32, 32),
        {"id": (2, 16), "tex": (2, 12), "pose": (2, 8), "light": (2, 27)},
    ),
    "nonlinear3dmm_shape_decoder": (
        dict(
            latent_dim=16, uv_size=(64, 96), channels=(16, 16, 8, 8, 8, 8), local_channels=(8, 8, 8, 8),
            local_boxes=((8, 8, 16, 24), (8, 40, 16, 24), (16, 24, 24, 16), (40, 32, 16, 32)),
            fusion_channels=8,
        ),
        lambda: torch.randn(2, 16),
        {"proxy": (2, 3, 64, 96), "residual": (2, 3, 64, 96), "full": (2, 3, 64, 96)},
    ),
    "nonlinear3dmm_albedo_decoder": (
        dict(latent_dim=16, uv_size=(64, 64), channels=(16, 8, 8, 8, 8, 8), local_channels=(8, 8, 8, 8),
             local_boxes=((8, 8, 16, 16), (8, 32, 16, 16)), fusion_channels=8),
        lambda: torch.randn(2, 16),
        {"proxy": (2, 3, 64, 64), "residual": (2, 3, 64, 64), "full": (2, 3, 64, 64)},
    ),
}  # fmt: skip

# Full-size parameter counts: reference numbers (torchvision / insightface / the papers) where known, else
# the closed form of the architecture as documented (see test_sphereface_count_closed_form).
PARAMS = {
    "resnet18": 11_689_512,  # torchvision resnet18
    "resnet34": 21_797_672,  # torchvision resnet34
    "resnet50": 25_557_032,  # torchvision resnet50
    "vgg16": 138_357_544,  # torchvision vgg16
    "vggface": 145_002_878,  # VGG-16 with a 2622-way classifier (Parkhi et al.)
    "pwcnet": 9_374_274,  # NVlabs PWCDCNet (RAFT's Table: PWC-Net 9.4M)
}
APPROX = {  # name -> (reference, relative tolerance)
    "iresnet50": (43.6e6, 0.005),  # insightface: 43.6M
    "iresnet100": (65.2e6, 0.005),  # insightface: 65.2M
    "deep3d_cnet": (3.0e6, 0.01),  # Deep3DFace §5: "C-Net has 3M parameters in total"
}


def _outputs(out) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"out": out}
    if isinstance(out, dict):
        return out
    return {str(i): t for i, t in enumerate(out)}


def test_every_registered_network_has_a_tiny_case():
    assert set(TINY) == set(fnn.REGISTRY)
    for entry in fnn.REGISTRY.values():
        assert entry.source


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_forward_shapes_and_gradients(name):
    overrides, make_input, expected = TINY[name]
    net = fnn.build(name, **overrides)
    with (
        torch.no_grad()
    ):  # zero-initialised heads (R-Net, C-Net, residual decoders) pass no gradient at step 0
        for p in net.parameters():
            if p.ndim > 1 and not p.any():
                p.normal_(std=0.01)
    inputs = make_input()
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    for x in inputs:
        x.requires_grad_(True)
    outs = _outputs(net(*inputs))
    assert {k: tuple(v.shape) for k, v in outs.items()} == expected
    assert all(torch.isfinite(v).all() for v in outs.values())
    loss = sum((v.float() * torch.randn_like(v)).sum() for v in outs.values())
    loss.backward()
    # gradients reach the inputs and the first parameterised layer
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in inputs)
    first = next(p for p in net.parameters() if p.requires_grad)
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(set(PARAMS) | set(APPROX)))
def test_full_size_parameter_counts(name):
    with torch.device("meta"):
        net = fnn.build(name)
    n = fnn.count_parameters(net)
    if name in PARAMS:
        assert n == PARAMS[name]
    else:
        ref, tol = APPROX[name]
        assert abs(n - ref) / ref < tol, n


def test_sphereface_count_closed_form():
    """Sphere64a: 4 strided convs + 60 residual convs (3x3, bias) + PReLUs + FC 512*7*6 -> 512."""
    units, ch = (3, 8, 16, 3), (64, 128, 256, 512)
    expected, cin = 0, 3
    for u, c in zip(units, ch):
        expected += cin * c * 9 + c + c  # strided conv + bias + PReLU
        expected += u * 2 * (c * c * 9 + c + c)
        cin = c
    expected += 512 * 7 * 6 * 512 + 512
    with torch.device("meta"):
        assert fnn.count_parameters(fnn.build("sphereface64")) == expected


def test_build_rejects_unknown_names_and_fields():
    with pytest.raises(KeyError, match="no network named"):
        fnn.build("resnet51")
    with pytest.raises(TypeError, match="unknown config field"):
        fnn.build("resnet50", widht=3)


def test_resnet50_full_size_forward_features():
    """The only full-size 224x224 ResNet-50 run: R-Net outputs and C-Net's inputs (deep3d.txt §5)."""
    net = fnn.build("deep3d_rnet").eval()
    with torch.no_grad():
        out, stage1, pooled = net(torch.rand(1, 3, 224, 224), return_features=True)
        conf = fnn.build("deep3d_cnet")(stage1, pooled)
    assert out.shape == (1, 239) and stage1.shape == (1, 256, 56, 56) and pooled.shape == (1, 2048)
    assert torch.all(out == 0)  # zero-initialised head: training starts at the mean face
    assert torch.allclose(conf, torch.full_like(conf, 0.5))  # zero last layer: plain averaging at the start


def test_input_validation_messages():
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        fnn.build("resnet18", width=8)(torch.rand(2, 4, 32, 32))
    with pytest.raises(ValueError, match="112"):
        fnn.build("iresnet50", layers=(1, 1, 1, 1), width=8)(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="divisible by 64"):
        fnn.build("hourglass", features=32, depth=4)(torch.rand(1, 3, 48, 48))
    with pytest.raises(ValueError, match="64,64"):
        fnn.build("sir_confnet", nf=16)(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="local_boxes"):
        fnn.build("sir_albedo_decoder", uv_size=(64, 64), local_boxes=((60, 0, 16, 16),))
    with pytest.raises(ValueError, match="B,3,3,H,W"):
        fnn.build("mvfnet", width_divisor=16)(torch.rand(2, 2, 3, 32, 32))


def test_vgg_extract_matches_forward_and_layer_names():
    vgg = fnn.build("vgg16_features", width_divisor=16).eval()
    x = torch.rand(2, 3, 32, 32)
    feats = vgg.extract(x, ["relu1_2", "relu3_3", "pool5"])
    assert feats["relu1_2"].shape == (2, 4, 32, 32) and feats["relu3_3"].shape == (2, 16, 8, 8)
    assert (feats["relu1_2"] >= 0).all()
    assert torch.allclose(feats["pool5"].mean((2, 3)), vgg(x))
    # torchvision layout: 13 convs at these indices of ``features``
    convs = [i for i, m in enumerate(vgg.features) if isinstance(m, torch.nn.Conv2d)]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def test_sir_encoder_shares_its_trunk():
    enc = fnn.build(
        "sir_encoder", units=(1, 1, 1, 1), channels=(8, 8, 16, 16), input_size=(32, 32), hidden=16
    )
    out = enc(torch.rand(2, 3, 32, 32))
    out["id"].sum().backward()
    assert enc.trunk[0][0].weight.grad.abs().sum() > 0  # the shared trunk learns from every branch
    assert enc.albedo_tail[0][0].weight.grad is None  # tails are separate


def test_proxy_residual_decoder_starts_at_proxy_and_fuses_local_parts():
    overrides = TINY["nonlinear3dmm_shape_decoder"][0]
    dec = fnn.build("nonlinear3dmm_shape_decoder", **overrides).eval()
    code = torch.randn(2, 16)
    out = dec(code)
    assert torch.equal(out["residual"], torch.zeros_like(out["residual"]))
    assert torch.allclose(out["full"], out["proxy"])
    # local canvas: zero outside every part box, the part's features inside
    canvas = dec.proxy._local(code)
    t, l, h, w = overrides["local_boxes"][0]
    assert canvas[:, :, t : t + h, l : l + w].abs().sum() > 0
    assert canvas[:, :, 60:, :].abs().sum() == 0
    albedo = fnn.build("nonlinear3dmm_albedo_decoder", **TINY["nonlinear3dmm_albedo_decoder"][0])(code)
    assert albedo["full"].abs().max() <= 1


def test_vmn_feeds_pmn():
    vmn = fnn.build("mmface_vmn", features=32, depth=2, out_channels=16, volume_size=32)
    pmn = fnn.build("mmface_pmn", channels=(4, 8, 8, 8, 16), pool_size=2, hidden=32)
    p = pmn(torch.sigmoid(vmn(torch.rand(2, 3, 64, 64))[-1]))
    assert p["id"].shape == (2, 199)
    # the identity branch has one more FC layer than the others (mmface.txt §3.2.2)
    n_fc = {k: sum(isinstance(m, torch.nn.Linear) for m in b) for k, b in
            (("id", pmn.id_branch), ("exp", pmn.exp_branch), ("pose", pmn.pose_branch))}  # fmt: skip
    assert n_fc == {"id": 3, "exp": 2, "pose": 2}

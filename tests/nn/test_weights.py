"""load_backbone_weights: round trips, wrappers, clear errors, and reference key names."""

from __future__ import annotations

import pytest
import torch

import facezoo.nn as fnn

TINY_RESNET = dict(width=8, layers=(1, 1, 1, 1), num_outputs=7)
TINY_IRESNET = dict(layers=(1, 1, 1, 1), width=8, input_size=32, num_features=16)


def _randomise_bn(net: torch.nn.Module) -> None:
    """Non-trivial running statistics, so that a round trip that forgot buffers would fail."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize(
    "name, overrides, shape",
    [
        ("resnet50", TINY_RESNET, (2, 3, 32, 32)),
        ("iresnet50", TINY_IRESNET, (2, 3, 32, 32)),
        ("vgg16", dict(width_divisor=16, num_classes=5), (2, 3, 32, 32)),
        (
            "sphereface64",
            dict(units=(1, 1, 1, 1), channels=(8, 8, 8, 8), input_size=(32, 32)),
            (2, 3, 32, 32),
        ),
    ],
)
def test_round_trip_gives_identical_outputs(tmp_path, name, overrides, shape):
    torch.manual_seed(0)
    src = fnn.build(name, **overrides)
    _randomise_bn(src)
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(123)  # a differently initialised copy
    dst = fnn.build(name, **overrides)
    x = torch.rand(shape)
    src.eval(), dst.eval()
    assert not torch.allclose(src(x), dst(x))
    assert fnn.load_backbone_weights(dst, path) is dst
    assert torch.equal(src(x), dst(x))


def test_pwcnet_round_trip_and_wrapped_checkpoint(tmp_path):
    src, dst = fnn.build("pwcnet"), fnn.build("pwcnet")
    # NVlabs ships {"state_dict": ...}-style .pth.tar files; DDP adds "module."
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}},
        tmp_path / "p.tar",
    )
    fnn.load_backbone_weights(dst, tmp_path / "p.tar")
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src.forward_pyramid(a, b)[0], dst.forward_pyramid(a, b)[0])


def test_exclude_keeps_a_new_head(tmp_path):
    imagenet = fnn.build("resnet50", **{**TINY_RESNET, "num_outputs": 1000})
    torch.save(imagenet.state_dict(), tmp_path / "imagenet.pth")
    rnet = fnn.build("deep3d_rnet", width=8, layers=(1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"shape mismatches \(2\): fc.bias"):
        fnn.load_backbone_weights(rnet, tmp_path / "imagenet.pth")
    fnn.load_backbone_weights(rnet, tmp_path / "imagenet.pth", exclude=("fc.",))
    assert torch.equal(rnet.conv1.weight, imagenet.conv1.weight)
    assert torch.all(rnet.fc.weight == 0)  # untouched, still zero-initialised


def test_clear_errors(tmp_path):
    net = fnn.build("resnet18", width=8, num_outputs=3)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        fnn.load_backbone_weights(net, tmp_path / "absent.pth")
    (tmp_path / "garbage.pth").write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        fnn.load_backbone_weights(net, tmp_path / "garbage.pth")
    torch.save({"lr": torch.tensor(0.1), "opt": "adam"}, tmp_path / "notstate.pth")
    with pytest.raises(ValueError, match="notstate.pth: expected a state dict"):
        fnn.load_backbone_weights(net, tmp_path / "notstate.pth")
    # another architecture's weights: every missing and unexpected key is reported
    other = fnn.build("iresnet50", **TINY_IRESNET)
    torch.save(other.state_dict(), tmp_path / "iresnet.pth")
    with pytest.raises(ValueError) as err:
        fnn.load_backbone_weights(net, tmp_path / "iresnet.pth")
    msg = str(err.value)
    assert "does not match ResNet" in msg and "missing keys" in msg and "unexpected keys" in msg
    assert "features.weight" in msg and "more)" in msg  # insightface-only keys named, long lists cut
    # a checkpoint without BatchNorm counters (torchvision's old files) is fine
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    fnn.load_backbone_weights(net, tmp_path / "old.pth")


def test_reference_key_names():
    """Names of the released checkpoints' keys (torchvision, insightface backbone.pth, NVlabs PWC-Net)."""
    with torch.device("meta"):
        resnet = set(fnn.build("resnet50").state_dict())
        iresnet = set(fnn.build("iresnet100").state_dict())
        pwc = set(fnn.build("pwcnet").state_dict())
        vgg = set(fnn.build("vgg16").state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer4.2.bn3.bias",
            "fc.weight"} <= resnet  # fmt: skip
    assert len(resnet) == 320  # torchvision resnet50 (incl. 53 num_batches_tracked)
    assert {"conv1.weight", "prelu.weight", "layer1.0.bn1.weight", "layer1.0.prelu.weight",
            "layer3.29.conv2.weight", "layer4.0.downsample.1.running_mean", "bn2.weight", "fc.weight",
            "features.weight", "features.running_var"} <= iresnet  # fmt: skip
    assert {"conv1a.0.weight", "conv1aa.0.bias", "conv6aa.0.weight", "conv6b.0.weight", "conv2_4.0.weight",
            "predict_flow6.weight", "deconv3.weight", "upfeat6.bias", "dc_conv7.bias"} <= pwc  # fmt: skip
    assert not any(k.startswith(("deconv2", "upfeat2")) for k in pwc)
    assert {"features.28.weight", "classifier.6.bias"} <= vgg and len(vgg) == 32

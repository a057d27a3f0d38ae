"""SphereFace-64 ("Sphere64a", Liu et al. CVPR 2017) and SIR's four-branch encoder built from it.

SphereFace (Table 2 of Liu et al.): four stages; each starts with a 3x3 stride-2 convolution + PReLU and
continues with residual units ``x + PReLU(conv3x3(PReLU(conv3x3(x))))``; no normalisation layers; 64-layer
variant: 3, 8, 16, 3 units in stages of 64, 128, 256, 512 channels (4 + 2*30 = 64 convolutions), then FC 512
on the 7x6 map of a 112x96 aligned face. Initialisation as the released Caffe model: Xavier for the stride-2
convs, N(0, 0.01) for the residual convs, zero biases, PReLU slope 0.25.

SIR (sir.txt §III-C): "Encode Modules 2, 3 and 4 contain last two blocks (Conv3.x, Conv4.x) of Sphere64a,
followed by a multilayer perceptron (MLP). They share the weights of Encode Module 1, which contains the first
two blocks (Conv0.x, Conv1.x)". So one shared trunk (stages 1-2) feeds three separate tails (stages 3-4 + MLP)
for the shape (199), albedo (512) and non-identity parameters (29 expression + 7 camera + 27 illumination).
The fourth branch (confidence map) is :class:`facezoo.nn.confnet.ConfNet`. Where the paper is silent: the MLP
is FC(512*7*6 -> 512) - PReLU - FC(512 -> n).

Which blocks are shared is ambiguous in the paper: it names "Conv0.x, Conv1.x" for Module 1 and "Conv3.x,
Conv4.x" for Modules 2-4, five names for SphereFace's four stages (Conv1.x-Conv4.x), and "first two" / "last
two" blocks. Our choice, the reading that uses every stage once: the shared trunk is stages 1-2 (64 and 128
channels, down to 1/4 resolution) and each branch has its own stages 3-4. ``depth`` picks SphereFace's Table 2
variants (4, 10, 20, 36 or 64 layers: :data:`SPHERE_UNITS`), so tests can use the 4-layer network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._registry import register
from .params import ShapeSizes

#: residual units per stage of SphereFace's Table 2 networks, by depth (4 + 2 * sum(units) conv layers).
SPHERE_UNITS: dict[int, tuple[int, int, int, int]] = {
    4: (0, 0, 0, 0),
    10: (0, 1, 2, 0),
    20: (1, 2, 4, 1),
    36: (2, 4, 8, 2),
    64: (3, 8, 16, 3),
}


def sphere_units(depth: int | None, units: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The residual units of a ``depth``-layer SphereFace (``None``: ``units`` as given).

    Example:
        >>> sphere_units(20, (3, 8, 16, 3))
        (1, 2, 4, 1)
    """
    if depth is None:
        return tuple(units)
    if depth not in SPHERE_UNITS:
        raise ValueError(f"depth: expected one of {sorted(SPHERE_UNITS)} (SphereFace Table 2), got {depth!r}")
    return SPHERE_UNITS[depth]


@dataclass(frozen=True)
class SphereFaceConfig:
    """SphereFace configuration.

    Attributes:
        units: residual units per stage (64-layer: 3, 8, 16, 3; 20-layer: 1, 2, 4, 1).
        channels: channels per stage.
        input_size: (H, W) of the aligned face (112, 96); both divisible by 16.
        embedding: size of the final FC (512); ``None`` returns the flattened last map.
    """

    units: tuple[int, int, int, int] = (3, 8, 16, 3)
    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    input_size: tuple[int, int] = (112, 96)
    embedding: int | None = 512


class SphereUnit(nn.Module):
    """``x + PReLU(conv(PReLU(conv(x))))`` with 3x3 convolutions."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(c, c, 3, padding=1), nn.PReLU(c)
        self.conv2, self.relu2 = nn.Conv2d(c, c, 3, padding=1), nn.PReLU(c)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.relu2(self.conv2(self.relu1(self.conv1(x))))


class SphereStage(nn.Sequential):
    """Stride-2 conv + PReLU, then ``n`` :class:`SphereUnit`: ``[B,cin,H,W] -> [B,cout,H/2,W/2]``."""

    def __init__(self, cin: int, cout: int, n: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1),
            nn.PReLU(cout),
            *[SphereUnit(cout) for _ in range(n)],
        )


def _init_sphere(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, SphereStage):
            nn.init.xavier_uniform_(m[0].weight)
            nn.init.zeros_(m[0].bias)
        elif isinstance(m, SphereUnit):
            for conv in (m.conv1, m.conv2):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)


def _input_size(config) -> tuple[int, int]:
    """``config.input_size`` (four stride-2 stages: both sides must be multiples of 16)."""
    h, w = config.input_size
    if h % 16 or w % 16:
        raise ValueError(
            f"{type(config).__name__}.input_size must be divisible by 16, got {config.input_size}"
        )
    return h, w


def _check_input(x: Tensor, size: tuple[int, int], who: str) -> None:
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, *size):
        raise ValueError(f"{who} expects x of shape [B,3,{size[0]},{size[1]}], got {tuple(x.shape)}")


class SphereFace(nn.Module):
    """``forward(x [B,3,112,96]) -> embedding [B,512]`` (input normalised as ``(x*255 - 127.5) / 128``).

    Example:
        >>> net = SphereFace(SphereFaceConfig())            # SphereFace-64
        >>> emb = net(torch.rand(2, 3, 112, 96))            # [2, 512]
    """

    def __init__(self, config: SphereFaceConfig = SphereFaceConfig()) -> None:
        super().__init__()
        h, w = _input_size(config)
        self.config = config
        cins = (3, *config.channels[:3])
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            SphereStage(ci, co, n) for ci, co, n in zip(cins, config.channels, config.units)
        )
        flat = config.channels[3] * (h // 16) * (w // 16)
        self.fc = nn.Linear(flat, config.embedding) if config.embedding else None
        _init_sphere(self)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.config.input_size, "SphereFace")
        x = torch.flatten(self.layer4(self.layer3(self.layer2(self.layer1(x)))), 1)
        return self.fc(x) if self.fc is not None else x


@dataclass(frozen=True)
class SIREncoderConfig(ShapeSizes):
    """SIR encoder configuration (sir.txt §III-C; ``n_id``, ``n_exp``: :class:`~facezoo.nn.params.ShapeSizes`,
    199 shape + 29 expression as in the paper).

    Attributes:
        units, channels, input_size: the Sphere64a backbone (see :class:`SphereFaceConfig`).
        depth: SphereFace depth (4, 10, 20, 36, 64) overriding ``units``; ``None`` keeps ``units``
            (64 layers).
        hidden: MLP hidden width.
        n_tex, n_pose, n_light: output sizes (512 albedo latent, 7 camera, 27 in the paper).
    """

    units: tuple[int, int, int, int] = (3, 8, 16, 3)
    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    input_size: tuple[int, int] = (112, 96)
    depth: int | None = None
    hidden: int = 512
    n_tex: int = 512
    n_pose: int = 7
    n_light: int = 27


class SIREncoder(nn.Module):
    """Shared Sphere64a trunk (stages 1-2) + three tails (stages 3-4 + MLP).

    ``forward(x [B,3,H,W]) -> {"id": [B,n_id], "tex": [B,n_tex], "exp": [B,n_exp], "pose": [B,n_pose],
    "light": [B,n_light]}`` (``tex``: the albedo latent; ``pose``: quaternion, translation, scale).

    Example:
        >>> enc = SIREncoder(SIREncoderConfig(depth=4, channels=(4, 4, 8, 8), input_size=(32, 32), hidden=8))
        >>> {k: tuple(v.shape) for k, v in enc(torch.rand(2, 3, 32, 32)).items()}["pose"]
        (2, 7)
    """

    def __init__(self, config: SIREncoderConfig = SIREncoderConfig()) -> None:
        super().__init__()
        h, w = _input_size(config)
        self.config = config
        c, u = config.channels, sphere_units(config.depth, config.units)
        self.trunk = nn.Sequential(SphereStage(3, c[0], u[0]), SphereStage(c[0], c[1], u[1]))
        flat = c[3] * (h // 16) * (w // 16)
        n_other = config.n_exp + config.n_pose + config.n_light

        def tail(n_out: int) -> nn.Sequential:
            return nn.Sequential(
                SphereStage(c[1], c[2], u[2]), SphereStage(c[2], c[3], u[3]), nn.Flatten(),
                nn.Linear(flat, config.hidden), nn.PReLU(config.hidden), nn.Linear(config.hidden, n_out),
            )  # fmt: skip

        self.id_tail, self.albedo_tail, self.other_tail = (
            tail(config.n_id),
            tail(config.n_tex),
            tail(n_other),
        )
        _init_sphere(self)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        _check_input(x, cfg.input_size, "SIREncoder")
        f = self.trunk(x)
        exp, pose, light = self.other_tail(f).split([cfg.n_exp, cfg.n_pose, cfg.n_light], dim=1)
        return {
            "id": self.id_tail(f),
            "tex": self.albedo_tail(f),
            "exp": exp,
            "pose": pose,
            "light": light,
        }


register(
    "sphereface64",
    SphereFaceConfig(),
    SphereFace,
    "SphereFace (Liu et al. 2017) Table 2, 64-layer; SIR §III-C",
)
register(
    "sphereface20",
    SphereFaceConfig(units=(1, 2, 4, 1)),
    SphereFace,
    "SphereFace (Liu et al. 2017) Table 2, 20-layer",
)
register(
    "sir_encoder", SIREncoderConfig(), SIREncoder, "SIR §III-C (sir.txt): Sphere64a trunk + 3 tails with MLPs"
)

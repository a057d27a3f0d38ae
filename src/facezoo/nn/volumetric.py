"""MMFace's parametric sub-network (PMN): 3D convolutions on a volume, then three FC branches.

MMFace (mmface.txt §3.2.2): "The parametric sub-network takes the output feature map of volumetric sub-network
as input, and predicts the 3DMM parameter p. We employ five 3D convolution layers to extract the 3D geometry
information from the intermediate volumetric representation. After extracting the 3D features, we incorporate
three independent branches with 2D fully-connected layers to regress the face identity parameter alpha_id,
face expression parameter alpha_exp, and the pose parameter {f, r, t}, respectively. Because the dimension of
shape parameter alpha_id is much larger than that of expression and face pose, we use one additional
fully-connected layer in its branch". Stage 1 trains PMN on ground-truth volumes (§4), so the input is an
occupancy volume.

Where the paper is silent: each 3D conv is 3x3x3 with stride 2, BN and ReLU, channels 16-32-64-128-256; an
adaptive average pool to ``pool_size``^3 makes the FC input independent of the volume resolution; the id
branch is FC-FC-FC (512, 512, 199), the expression and pose branches FC-FC (512, 29) and (512, 6); the pose
vector is (f, r = 3 Euler angles, t = 2D translation) as in §3.1 Eq. 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ._blocks import strided_convs
from ._registry import register
from .params import ShapeSizes


@dataclass(frozen=True)
class VolumeRegressorConfig(ShapeSizes):
    """PMN configuration (``n_id``, ``n_exp``: :class:`~facezoo.nn.params.ShapeSizes`, 199 BFM identity + 29
    FaceWarehouse expression).

    Attributes:
        in_channels: volume channels (1: occupancy).
        channels: output channels of the five 3D convolutions.
        pool_size: side of the adaptive average pool before the FC branches.
        hidden: width of the hidden FC layers.
        n_pose: pose size (6: f, 3 angles, t_x, t_y).
    """

    in_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    pool_size: int = 4
    hidden: int = 512
    n_pose: int = 6


class VolumeRegressor(nn.Module):
    """``forward(volume) -> {"id": [B,n_id], "exp": [B,n_exp], "pose": [B,n_pose]}``.

    ``volume``: ``[B, D, H, W]`` occupancy (e.g. ``sigmoid`` of :class:`StackedHourglass` logits, or the
    ground truth) or ``[B, in_channels, D, H, W]``. Any resolution >= 2**len(channels) works (128^3
    by default).

    Example:
        >>> import torch
        >>> pmn = VolumeRegressor(VolumeRegressorConfig(channels=(4, 8, 8, 8, 16), pool_size=2, hidden=32))
        >>> p = pmn(torch.rand(2, 32, 32, 32))        # e.g. the sigmoid of StackedHourglass logits
        >>> {k: tuple(v.shape) for k, v in p.items()}
        {'id': (2, 199), 'exp': (2, 29), 'pose': (2, 6)}
    """

    def __init__(self, config: VolumeRegressorConfig = VolumeRegressorConfig()) -> None:
        super().__init__()
        self.config = config
        layers = strided_convs(config.in_channels, config.channels, dims=3, norm=True)
        cin = config.channels[-1]
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(config.pool_size), nn.Flatten())
        flat, h = cin * config.pool_size**3, config.hidden

        def branch(n_out: int, n_hidden_layers: int) -> nn.Sequential:
            mods: list[nn.Module] = []
            d = flat
            for _ in range(n_hidden_layers):
                mods += [nn.Linear(d, h), nn.ReLU(inplace=True)]
                d = h
            return nn.Sequential(*mods, nn.Linear(d, n_out))

        self.id_branch = branch(config.n_id, 2)  # the extra FC layer of the identity branch
        self.exp_branch = branch(config.n_exp, 1)
        self.pose_branch = branch(config.n_pose, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for b in (self.id_branch, self.exp_branch, self.pose_branch):  # small outputs at the start
            nn.init.normal_(b[-1].weight, std=1e-3)

    def forward(self, volume: Tensor) -> dict[str, Tensor]:
        if volume.ndim == 4 and self.config.in_channels == 1:
            volume = volume.unsqueeze(1)
        if volume.ndim != 5 or volume.shape[1] != self.config.in_channels:
            raise ValueError(
                f"VolumeRegressor expects volume [B,D,H,W] or [B,{self.config.in_channels},D,H,W], "
                f"got {tuple(volume.shape)}"
            )
        f = self.encoder(volume)
        return {"id": self.id_branch(f), "exp": self.exp_branch(f), "pose": self.pose_branch(f)}


register(
    "mmface_pmn",
    VolumeRegressorConfig(),
    VolumeRegressor,
    "MMFace §3.2.2 (mmface.txt): five 3D convs + id (3 FC) / exp (2 FC) / pose (2 FC) branches",
)

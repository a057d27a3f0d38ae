"""Cameras: the map from facezoo model space (mm, +y up, +z toward the viewer) to image pixels and clip space.

Two small classes holding tensors (no parameters, no ``nn.Module``): :class:`WeakPerspective` (MMFace,
MVF-Net, SIR, Nonlinear 3DMM, 300W-LP's ``Pose_Para``) and :class:`Perspective` (Deep3DFace). Both share one
interface: ``rotation [B,3,3]``, ``view(v)``, ``project(v) -> [B,V,2]`` pixels (origin top-left, +y down,
pixel centres at ``+0.5``) and ``to_clip(v, (H, W)) -> [B,V,4]`` OpenGL clip coordinates for the renderer,
whose NDC maps back to exactly the pixels of ``project`` via ``px = (ndc_x + 1) W / 2`` and ``py = (1 - ndc_y)
H / 2``. A camera with batch size 1 broadcasts over the vertices' batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from facezoo.geometry.rotations import euler_to_matrix, matrix_to_euler, quaternion_to_matrix

__all__ = ["WeakPerspective", "Perspective"]


def _batch_param(x, batch: int, tail: tuple[int, ...], name: str, like: torch.Tensor) -> torch.Tensor:
    """``x`` as a ``[batch, *tail]`` tensor on ``like``'s device/dtype; unbatched values broadcast."""
    t = torch.as_tensor(x, dtype=like.dtype, device=like.device) if not isinstance(x, torch.Tensor) else x
    if not t.is_floating_point():
        t = t.to(like.dtype)
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device} but rotation is on {like.device}")
    if tuple(t.shape) == tail:
        t = t.expand(batch, *tail)
    if tuple(t.shape) != (batch, *tail):
        want = f"[{', '.join(['B=' + str(batch), *map(str, tail)])}]"
        raise ValueError(f"{name} must have shape {want} or {list(tail)}, got {tuple(t.shape)}")
    return t.to(like.dtype)


def _check_rotation(rotation: torch.Tensor) -> torch.Tensor:
    if not isinstance(rotation, torch.Tensor) or not rotation.is_floating_point():
        raise TypeError(f"rotation must be a floating-point torch.Tensor, got {type(rotation).__name__}")
    if rotation.ndim == 2:
        rotation = rotation[None]
    if rotation.ndim != 3 or tuple(rotation.shape[1:]) != (3, 3):
        raise ValueError(f"rotation must have shape [B,3,3], got {tuple(rotation.shape)}")
    return rotation


def _image_size(image_size: Sequence[int]) -> tuple[int, int]:
    if len(image_size) != 2 or min(int(image_size[0]), int(image_size[1])) <= 0:
        raise ValueError(f"image_size must be (H, W) with positive entries, got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


class _Camera:
    """Shared plumbing: batch size, device/dtype moves, indexing, vertex validation, and ``to_clip`` /
    ``view_to_clip`` over a subclass's ``_depth_range(h, w) -> (near, far)`` defaults and ``_clip``."""

    _fields: tuple[str, ...] = ()

    @property
    def rotation(self) -> torch.Tensor:
        """Model-to-view rotation ``[B,3,3]``."""
        return self._rotation

    @property
    def batch_size(self) -> int:
        return self._rotation.shape[0]

    def __len__(self) -> int:
        return self.batch_size

    @property
    def device(self) -> torch.device:
        return self._rotation.device

    @property
    def dtype(self) -> torch.dtype:
        return self._rotation.dtype

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f: getattr(self, f) for f in self._fields}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """A copy with every tensor moved to ``device`` / cast to ``dtype``."""
        return type(self)(**{k: v.to(device=device, dtype=dtype) for k, v in self._tensors().items()})

    def detach(self):
        """A copy with every tensor detached from the autograd graph."""
        return type(self)(**{k: v.detach() for k, v in self._tensors().items()})

    def __getitem__(self, index):
        """Batch indexing (int, slice, bool mask or index tensor); an int keeps a batch of 1."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return type(self)(**{k: v[index] for k, v in self._tensors().items()})

    def to_clip(
        self,
        vertices: torch.Tensor,
        image_size: Sequence[int],
        near: float | None = None,
        far: float | None = None,
    ) -> torch.Tensor:
        """Clip coordinates ``[B,V,4]`` of model-space ``vertices [B,V,3]`` for an ``(H, W)`` image, for the
        renderer: :meth:`view_to_clip` of :meth:`view` (a renderer that needs both calls them itself, so the
        rotation happens once)."""
        return self.view_to_clip(self.view(vertices), image_size, near, far)

    def view_to_clip(
        self,
        view: torch.Tensor,
        image_size: Sequence[int],
        near: float | None = None,
        far: float | None = None,
    ) -> torch.Tensor:
        """Clip coordinates ``[B,V,4]`` for an ``(H, W)`` image of ``view [B,V,3]`` (:meth:`view`'s output).

        ``near`` / ``far`` left ``None`` take the camera's defaults for that image size; the projection and
        the meaning of the depth range are the subclass's (``_clip``)."""
        h, w = _image_size(image_size)
        default_near, default_far = self._depth_range(h, w)
        near = default_near if near is None else float(near)
        far = default_far if far is None else float(far)
        return self._clip(view, h, w, near, far)

    def _check_vertices(self, vertices: torch.Tensor) -> torch.Tensor:
        if not isinstance(vertices, torch.Tensor) or not vertices.is_floating_point():
            raise TypeError(f"vertices must be a floating-point torch.Tensor, got {type(vertices).__name__}")
        if vertices.ndim != 3 or vertices.shape[-1] != 3:
            raise ValueError(f"vertices must have shape [B,V,3], got {tuple(vertices.shape)}")
        if vertices.device != self.device:
            raise ValueError(f"vertices are on {vertices.device} but the camera is on {self.device}")
        b = vertices.shape[0]
        if self.batch_size not in (1, b):
            raise ValueError(f"vertices have batch size {b} but the camera has {self.batch_size}")
        return vertices

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self.batch_size}, device={self.device}, dtype={self.dtype})"
        )


class WeakPerspective(_Camera):
    """Scaled orthographic camera: ``w = R v``, ``px = s w_x + t_x``, ``py = t_y - s w_y``.

    Args:
        scale: ``[B]`` (or a scalar) pixels per millimetre.
        rotation: ``[B,3,3]`` model-to-view rotation.
        t2d: ``[B,2]`` (or ``[2]``) pixel position of the model origin.

    View space is the rotated model space, ``view(v) = R v`` (mm, +y up, +z toward the viewer, origin at the
    model origin): the translation lives in pixels only. Larger ``w_z`` is nearer the viewer.

    Example:
        >>> cam = WeakPerspective(torch.tensor([2.0]), torch.eye(3)[None], torch.tensor([[32.0, 32.0]]))
        >>> cam.project(torch.tensor([[[10.0, 5.0, 0.0]]]))
        tensor([[[52., 22.]]])
    """

    _fields = ("scale", "rotation", "t2d")

    def __init__(self, scale, rotation: torch.Tensor, t2d) -> None:
        rotation = _check_rotation(rotation)
        b = rotation.shape[0]
        self.scale = _batch_param(scale, b, (), "scale", rotation)
        self._rotation = rotation
        self.t2d = _batch_param(t2d, b, (2,), "t2d", rotation)

    @classmethod
    def from_params(cls, params: torch.Tensor, convention: str = "zyx") -> WeakPerspective:
        """From MVF-Net / MMFace pose vectors ``[B,6] = (scale, pitch, yaw, roll, t_x, t_y)``.

        MVF-Net's ``P = {f, alpha, beta, gamma, t_x, t_y}`` and MMFace's ``p = [f, r, t]`` are this
        vector; the papers do not state an Euler order, so facezoo uses ``convention`` (default ``"zyx"``).
        """
        if not isinstance(params, torch.Tensor) or params.ndim != 2 or params.shape[-1] != 6:
            raise ValueError(f"params must be a [B,6] tensor, got {getattr(params, 'shape', type(params))}")
        return cls(params[:, 0], euler_to_matrix(params[:, 1:4], convention), params[:, 4:6])

    def to_params(self, convention: str = "zyx") -> torch.Tensor:
        """Inverse of :meth:`from_params`: ``[B,6] = (scale, pitch, yaw, roll, t_x, t_y)``."""
        angles = matrix_to_euler(self._rotation, convention)
        return torch.cat((self.scale[:, None], angles, self.t2d), dim=-1)

    @classmethod
    def from_quaternion(cls, scale, quaternion: torch.Tensor, t2d) -> WeakPerspective:
        """SIR's parameterisation: ``scale [B]``, quaternion ``(w, x, y, z)`` ``[B,4]``, ``t2d [B,2]``."""
        return cls(scale, quaternion_to_matrix(quaternion), t2d)

    def view(self, vertices: torch.Tensor) -> torch.Tensor:
        """Rotated vertices ``w = R v`` ``[B,V,3]`` (mm)."""
        self._check_vertices(vertices)
        return vertices @ self._rotation.transpose(-1, -2)

    def project(self, vertices: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates ``[B,V,2]`` of model-space ``vertices [B,V,3]``."""
        return self._pixels(self.view(vertices))

    def _pixels(self, w: torch.Tensor) -> torch.Tensor:
        s = self.scale[:, None]
        return torch.stack(
            (s * w[..., 0] + self.t2d[:, None, 0], self.t2d[:, None, 1] - s * w[..., 1]), dim=-1
        )

    def _depth_range(self, h: int, w: int) -> tuple[float, float]:
        # +-2 max(H, W) px: enough for a face filling the image; points outside are clipped
        return -2.0 * max(h, w), 2.0 * max(h, w)

    def _clip(self, view: torch.Tensor, h: int, w: int, near: float, far: float) -> torch.Tensor:
        """Orthographic clip coordinates ``[B,V,4]`` (``w = 1``) of rotated points ``view [B,V,3]``.

        ``x, y`` are the NDC of :meth:`project`'s pixels. Depth is the pixel-scaled distance behind the model
        origin, ``d = -s * w_z`` (px; nearer = smaller), mapped affinely so that ``d = near -> -1`` and
        ``d = far -> +1``: ``z = (2 d - far - near) / (far - near)``. Defaults (:meth:`view_to_clip`):
        ``near = -2 max(H, W)``, ``far = +2 max(H, W)``.
        """
        if not far > near:
            raise ValueError(f"far must be greater than near, got near={near}, far={far}")
        pix = self._pixels(view)
        d = -self.scale[:, None] * view[..., 2]
        x = 2.0 * pix[..., 0] / w - 1.0
        y = 1.0 - 2.0 * pix[..., 1] / h
        z = (2.0 * d - (far + near)) / (far - near)
        return torch.stack((x, y, z, torch.ones_like(z)), dim=-1)


class Perspective(_Camera):
    """Pinhole camera at the origin looking down -z (+y up): ``v_view = R v + t``,
    ``px = cx + f x / (-z)``, ``py = cy - f y / (-z)`` (view coordinates in mm, f in pixels).

    Args:
        focal: ``[B]`` or a float, focal length in pixels.
        center: ``[B,2]`` or ``(cx, cy)``, principal point in pixels (top-left origin, +y down).
        rotation: ``[B,3,3]`` model-to-view rotation.
        translation: ``[B,3]`` mm; a face in front of the camera has ``z_view < 0``.

    Example:
        >>> cam = Perspective(1000.0, (112.0, 112.0), torch.eye(3)[None], torch.tensor([[0.0, 0.0, -1000.0]]))
        >>> cam.project(torch.tensor([[[10.0, 10.0, 0.0]]]))
        tensor([[[122., 102.]]])
    """

    _fields = ("focal", "center", "rotation", "translation")

    def __init__(self, focal, center, rotation: torch.Tensor, translation) -> None:
        rotation = _check_rotation(rotation)
        b = rotation.shape[0]
        self.focal = _batch_param(focal, b, (), "focal", rotation)
        self.center = _batch_param(center, b, (2,), "center", rotation)
        self._rotation = rotation
        self.translation = _batch_param(translation, b, (3,), "translation", rotation)

    @classmethod
    def from_params(
        cls, angles: torch.Tensor, translation: torch.Tensor, focal, center, convention: str = "zyx"
    ) -> Perspective:
        """From Euler ``angles [B,3]`` (rad, see :mod:`~facezoo.geometry.rotations`), ``translation [B,3]``"""
        return cls(focal, center, euler_to_matrix(angles, convention), translation)

    @classmethod
    def deep3d(
        cls,
        angles: torch.Tensor,
        translation: torch.Tensor,
        focal: float = 1015.0,
        center: float | Sequence[float] = 112.0,
        camera_distance: float = 10.0,
        unit_mm: float = 100.0,
    ) -> Perspective:
        """Deep3DFace's camera (Deep3DFaceRecon ``ParametricFaceModel``) for a model in facezoo's mm.

        Deep3DFace's BFM is in decimetres (BFM µm / 1e5; ``unit_mm = 100`` mm per unit), its face is ``p = R v
        + t`` with ``R = Rz Ry Rx`` of the regressed ``angles`` (their row-vector ``compute_rotation`` is the
        same rotation, see :mod:`facezoo.geometry.rotations`) and ``t`` the regressed ``translation`` in their
        units; the camera sits at ``z = camera_distance`` (10 dm = 1 m) looking down -z, and ``x_img = center
        + focal * p_x / (camera_distance - p_z)``, ``y_img`` the same in a y-up image that their data pipeline
        flips (``H - y``). With ``v`` in mm this is exactly ``Perspective(focal, center, R, unit_mm * (t - (0,
        0, camera_distance)))`` in facezoo's convention. Note that Deep3DFace recentres the BFM mean shape on
        its vertex centroid; ``translation`` refers to that origin. Defaults: focal 1015 px, principal point
        (112, 112) of a 224x224 crop.

        Args:
            angles: ``[B,3]`` (pitch, yaw, roll) rad. translation: ``[B,3]`` Deep3DFace units.
        """
        if not isinstance(translation, torch.Tensor) or translation.ndim != 2 or translation.shape[-1] != 3:
            raise ValueError(f"translation must be [B,3], got {getattr(translation, 'shape', translation)}")
        offset = translation.new_tensor([0.0, 0.0, camera_distance])
        if isinstance(center, (int, float)):
            center = (float(center), float(center))
        return cls.from_params(angles, unit_mm * (translation - offset), focal, center)

    def view(self, vertices: torch.Tensor) -> torch.Tensor:
        """View-space vertices ``R v + t`` ``[B,V,3]`` (mm; in front of the camera ``z < 0``)."""
        self._check_vertices(vertices)
        return vertices @ self._rotation.transpose(-1, -2) + self.translation[:, None]

    def project(self, vertices: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates ``[B,V,2]`` of model-space ``vertices [B,V,3]`` (no clamping of the depth)."""
        p = self.view(vertices)
        depth = -p[..., 2]
        f = self.focal[:, None]
        px = self.center[:, None, 0] + f * p[..., 0] / depth
        py = self.center[:, None, 1] - f * p[..., 1] / depth
        return torch.stack((px, py), dim=-1)

    def projection_matrix(
        self, image_size: Sequence[int], near: float = 10.0, far: float = 10000.0
    ) -> torch.Tensor:
        """OpenGL projection ``[B,4,4]`` from the intrinsics: ``clip = P @ (x, y, z, 1)`` in view space.

        Rows: ``(2f/W, 0, 1 - 2cx/W, 0)``, ``(0, 2f/H, 2cy/H - 1, 0)``,
        ``(0, 0, -(far+near)/(far-near), -2 far near/(far-near))``, ``(0, 0, -1, 0)``, so that
        ``ndc_x = 2 px/W - 1`` and ``ndc_y = 1 - 2 py/H`` for the pixels of :meth:`project`, and ``z/w`` is
        -1 at ``z = -near`` and +1 at ``z = -far`` (mm).
        """
        h, w = _image_size(image_size)
        if not far > near > 0:
            raise ValueError(f"need far > near > 0, got near={near}, far={far}")
        b = self.batch_size
        p = self.focal.new_zeros(b, 4, 4)
        p[:, 0, 0] = 2.0 * self.focal / w
        p[:, 0, 2] = 1.0 - 2.0 * self.center[:, 0] / w
        p[:, 1, 1] = 2.0 * self.focal / h
        p[:, 1, 2] = 2.0 * self.center[:, 1] / h - 1.0
        p[:, 2, 2] = -(far + near) / (far - near)
        p[:, 2, 3] = -2.0 * far * near / (far - near)
        p[:, 3, 2] = -1.0
        return p

    def _depth_range(self, h: int, w: int) -> tuple[float, float]:
        return 10.0, 10000.0  # mm in front of the camera, the defaults of projection_matrix

    def _clip(self, view: torch.Tensor, h: int, w: int, near: float, far: float) -> torch.Tensor:
        """Clip coordinates ``[B,V,4]`` = :meth:`projection_matrix` ``@ view`` for view-space points
        ``view [B,V,3]`` (near/far in mm; :meth:`view_to_clip`'s defaults 10 and 10000)."""
        proj = self.projection_matrix((h, w), near, far)
        # P @ (x, y, z, 1): the last column of P is the translation part
        return view @ proj[:, :, :3].transpose(-1, -2) + proj[:, None, :, 3]

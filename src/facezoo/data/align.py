"""Face alignment and cropping: 2x3 affines from original-image pixels to crop pixels, and what they do to
images, landmarks and 300W-LP pose parameters.

Every crop is described by one affine ``A [B,2,3]`` (float64 recommended) with ``crop = A @ [x, y, 1]`` in
facezoo pixel coordinates (origin top-left, +y down, pixel centres at +0.5). Keep it with the sample
(``sample["affine"]``) to map predictions back with :func:`invert_affine`.

Two croppers:

* :func:`deep3d_affine` — Deep3DFace's ``align_img``: ``POS`` fits a weak-perspective projection of five 3D
  template landmarks to the five detected points (least squares, 8 unknowns); the scale ``s`` is the mean norm
  of the two projection rows, the crop is centred on the fitted translation and scaled by ``rescale_factor /
  s`` (102, for other crop sizes ``102 * size / 224`` like the focal length) into a ``target_size`` (224)
  square. What we reproduce: POS, the template, 102 and 224. What we
  drop: Deep3DFace resizes with PIL bicubic and then crops at integer-truncated offsets (sub-pixel and 1-pixel
  differences); we warp once with bilinear sampling at the exact affine, so landmarks and image stay
  consistent.
* :func:`landmark_box_affine` — square box on the landmarks' bounding box (MVF-Net, MMFace, 3DDFA), side
  ``scale * max(w, h)`` (3DDFA's ``parse_roi_box_from_landmark`` is ``scale = sqrt(2)``), optional shift as a
  fraction of the side (MVF-Net's 0-5 % augmentation).

Example:
    >>> import torch
    >>> lm = torch.tensor([[[100.0, 100.0], [200.0, 228.0]]], dtype=torch.float64)
    >>> A = landmark_box_affine(lm, 224, scale=1.0)
    >>> transform_points(lm, A)  # the box [100,200]x[100,228] -> a 224 px square centred on it
    tensor([[[ 24.5000,   0.0000],
             [199.5000, 224.0000]]], dtype=torch.float64)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from facezoo.geometry.icp import umeyama
from facezoo.geometry.rotations import euler_to_matrix, matrix_to_euler

# Deep3DFace's five-point 3D template (decimetres, +y up): the 5-point reduction (eye centres, nose tip, mouth
# corners) of its BFM-derived ``similarity_Lm3D_all.mat``, symmetrised and rounded to 0.01 dm (1 mm). Pass the
# exact file's points as ``reference`` to reproduce Deep3DFace to the last digit
# (:func:`load_deep3d_reference`).
DEEP3D_LM5_TEMPLATE = (
    (-0.31, 0.29, 0.13),
    (0.31, 0.29, 0.13),
    (0.0, -0.05, 0.55),
    (-0.25, -0.38, 0.22),
    (0.25, -0.38, 0.22),
)


#: Deep3DFace's ``align_img`` rescale factor: crop pixels per template unit (decimetre) in a 224 crop.
DEEP3D_RESCALE = 102.0


def _check_points(name: str, points: Tensor, n: int | None = None, dims: tuple[int, ...] = (2,)) -> Tensor:
    if not isinstance(points, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] not in dims or (n is not None and points.shape[1] != n):
        want = f"[B,{n if n is not None else 'N'},{'|'.join(map(str, dims))}]"
        raise ValueError(f"{name} must be {want}, got {tuple(points.shape)}")
    return points


def _check_affine(affine: Tensor) -> Tensor:
    if not isinstance(affine, Tensor) or affine.ndim != 3 or affine.shape[1:] != (2, 3):
        raise ValueError(f"affine must be a [B,2,3] tensor, got {getattr(affine, 'shape', type(affine))}")
    return affine


def load_deep3d_reference(path: str) -> Tensor:
    """Deep3DFace's ``similarity_Lm3D_all.mat`` (``lm`` [68,3]) -> ``load_lm3d``'s template ``[5,3]``."""
    from scipy.io import loadmat

    lm = torch.as_tensor(loadmat(path)["lm"], dtype=torch.float64)
    idx = [30, 36, 39, 42, 45, 48, 54]
    five = torch.stack([lm[idx[0]], lm[idx[1:3]].mean(0), lm[idx[3:5]].mean(0), lm[idx[5]], lm[idx[6]]])
    return five[[1, 2, 0, 3, 4]]


def pos_fit(landmarks5: Tensor, reference: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Deep3DFace's ``POS``: least-squares weak-perspective fit ``xp ~ [R1 t1; R2 t2] [X; 1]``.

    Args:
        landmarks5: ``[B,5,2]`` image pixels (any y direction: flipping y flips R2's sign and keeps its norm).
        reference: ``[5,3]`` template (default :data:`DEEP3D_LM5_TEMPLATE`).

    Returns:
        ``(t [B,2], s [B])``: the projected template origin in pixels and the mean row norm (pixels per unit).
    """
    _check_points("landmarks5", landmarks5)
    ref = torch.as_tensor(DEEP3D_LM5_TEMPLATE if reference is None else reference, dtype=torch.float64)
    ref = ref.to(landmarks5.device)
    if ref.shape != (landmarks5.shape[1], 3):
        raise ValueError(f"reference must be [{landmarks5.shape[1]},3], got {tuple(ref.shape)}")
    a = torch.cat([ref, torch.ones_like(ref[:, :1])], dim=1)  # [N,4]
    sol = torch.linalg.lstsq(a.expand(landmarks5.shape[0], -1, -1), landmarks5.double()).solution  # [B,4,2]
    s = (sol[:, :3, 0].norm(dim=1) + sol[:, :3, 1].norm(dim=1)) / 2
    return sol[:, 3, :], s


def center_scale_affine(center: Tensor, scale: Tensor, out_size: int | tuple[int, int]) -> Tensor:
    """Affine ``[B,2,3]`` that scales by ``scale [B]`` about ``center [B,2]``, moved to the crop centre."""
    h, w = (out_size, out_size) if isinstance(out_size, int) else out_size
    k = scale.double()
    zero = torch.zeros_like(k)
    row0 = torch.stack([k, zero, w / 2 - k * center[:, 0].double()], dim=-1)
    row1 = torch.stack([zero, k, h / 2 - k * center[:, 1].double()], dim=-1)
    return torch.stack([row0, row1], dim=1)


def deep3d_affine(
    landmarks5: Tensor,
    reference: Tensor | None = None,
    target_size: int = 224,
    rescale_factor: float | None = None,
) -> Tensor:
    """Deep3DFace's 5-point alignment (``align_img``) as an affine ``[B,2,3]`` to a ``target_size`` square
    crop.

    Args:
        landmarks5: ``[B,5,2]`` pixels: left eye, right eye, nose tip, left and right mouth corners.
        reference: ``[5,3]`` 3D template (default :data:`DEEP3D_LM5_TEMPLATE`, decimetres).
        target_size: crop side in pixels (224).
        rescale_factor: pixels per template unit in the crop; None: Deep3DFace's 102 for a 224 crop scaled by
            ``target_size / 224``, as Deep3DFace's focal length (1015 px at 224) is, so that the face fills
            every crop size alike and the camera's projection matches it.

    Example:
        >>> lm = torch.tensor([[[80.0, 90], [140, 90], [110, 125], [88, 155], [132, 155]]])
        >>> a224, a112 = deep3d_affine(lm, target_size=224), deep3d_affine(lm, target_size=112)
        >>> torch.allclose(transform_points(lm.double(), a112), transform_points(lm.double(), a224) / 2)
        True
    """
    if rescale_factor is None:
        rescale_factor = DEEP3D_RESCALE * target_size / 224.0
    t, s = pos_fit(landmarks5, reference)
    return center_scale_affine(t, rescale_factor / s, target_size)


def random_crop_jitter(
    size: int,
    shift: float = 10.0,
    scale_delta: float = 0.1,
    rotation_degrees: float = 10.0,
    batch: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A random similarity ``[batch,2,3]`` (float64) of a ``size`` square crop about its centre: the official
    Deep3DFace training augmentation (``get_affine_mat``; 10 px, 0.1, 10 degrees at 224): a shift by whole
    pixels uniform in ``[-shift, shift]`` per axis, then a rotation uniform in ``[-rotation_degrees,
    rotation_degrees]`` and a scale uniform in ``[1 - scale_delta, 1 + scale_delta]`` about the centre.
    Compose it after a crop's affine (:func:`compose_affine`); the flip is :func:`facezoo.data.hflip_sample`.

    Example:
        >>> a = random_crop_jitter(224, 0.0, 0.0, 0.0)  # no jitter: the identity
        >>> torch.equal(a[0], torch.eye(2, 3, dtype=torch.float64))
        True
    """
    if shift < 0 or not 0 <= scale_delta < 1 or rotation_degrees < 0:
        raise ValueError(
            f"random_crop_jitter: need shift >= 0, 0 <= scale_delta < 1, rotation_degrees >= 0; got {shift}, "
            f"{scale_delta}, {rotation_degrees}"
        )
    u = torch.rand(batch, 4, generator=generator, dtype=torch.float64) * 2 - 1
    n = int(shift)
    d = torch.randint(-n, n + 1, (batch, 2), generator=generator).double() if n > 0 else torch.zeros(batch, 2)
    k = 1.0 + scale_delta * u[:, 0]
    ang = torch.deg2rad(rotation_degrees * u[:, 1])
    c, s_ = torch.cos(ang) * k, torch.sin(ang) * k
    lin = torch.stack([torch.stack([c, -s_], -1), torch.stack([s_, c], -1)], 1)  # [B,2,2]
    centre = torch.full((batch, 2), size / 2.0, dtype=torch.float64)
    t = centre + (lin @ (d.double() - centre)[..., None])[..., 0]
    return torch.cat([lin, t[..., None]], dim=-1)


def landmark_box(landmarks: Tensor) -> tuple[Tensor, Tensor]:
    """Centre ``[B,2]`` and side ``[B]`` (= max(w, h)) of the landmarks' axis-aligned bounding box."""
    _check_points("landmarks", landmarks, dims=(2, 3))
    lo, hi = landmarks[..., :2].amin(1), landmarks[..., :2].amax(1)
    return (lo + hi) / 2, (hi - lo).amax(-1)


def landmark_box_affine(
    landmarks: Tensor, out_size: int = 224, scale: float = 1.25, shift: Tensor | None = None
) -> Tensor:
    """Square landmark-box crop (MVF-Net / MMFace / 3DDFA) as an affine ``[B,2,3]``.

    Args:
        landmarks: ``[B,N,2|3]`` pixels (only x, y are used).
        out_size: crop side in pixels.
        scale: box side = ``scale * max(w, h)`` of the landmarks' box (margin; sqrt(2) = 3DDFA).
        shift: ``[B,2]`` box-centre offset as a fraction of the box side (MVF-Net draws it in [-0.05, 0.05]).
    """
    center, side = landmark_box(landmarks)
    side = side.double() * scale
    if shift is not None:
        center = center.double() + shift.double().to(center.device) * side[:, None]
    if (side <= 0).any():
        raise ValueError("landmark_box_affine: landmarks span an empty box")
    return center_scale_affine(center.double(), out_size / side, out_size)


def estimate_similarity(src: Tensor, dst: Tensor) -> Tensor:
    """Least-squares similarity (Umeyama 1991, :func:`facezoo.geometry.umeyama`) mapping ``src [B,N,2]`` onto
    ``dst [B,N,2]`` -> affine ``[B,2,3]`` (float64).

    Used for template alignment such as ArcFace/SIR's 5-point 112x96 crops (``dst`` = the template).
    """
    _check_points("src", src)
    _check_points("dst", dst, src.shape[1])
    rot, t, s = umeyama(src.double(), dst.to(src.device).double())
    return torch.cat([s[:, None, None] * rot, t[..., None]], dim=-1)


def transform_points(points: Tensor, affine: Tensor) -> Tensor:
    """Apply ``affine [B,2,3]`` to ``points [B,N,2|3]``; a third coordinate (depth) is scaled by the affine's
    isotropic scale ``sqrt(|det|)`` so 3D landmarks stay in one pixel scale."""
    _check_points("points", points, dims=(2, 3))
    _check_affine(affine)
    a = affine.to(points.device, torch.float64)
    xy = points[..., :2].double() @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]
    if points.shape[-1] == 3:
        k = torch.linalg.det(a[:, :, :2]).abs().sqrt()
        xy = torch.cat([xy, points[..., 2:].double() * k[:, None, None]], dim=-1)
    return xy.to(points.dtype)


def invert_affine(affine: Tensor) -> Tensor:
    """Inverse ``[B,2,3]`` of an invertible affine (crop -> original pixels)."""
    _check_affine(affine)
    lin_inv = torch.linalg.inv(affine[:, :, :2])
    return torch.cat([lin_inv, -(lin_inv @ affine[:, :, 2:])], dim=-1)


def compose_affine(second: Tensor, first: Tensor) -> Tensor:
    """``second ∘ first`` for ``[B,2,3]`` affines (apply ``first``, then ``second``)."""
    lin = second[:, :, :2] @ first[:, :, :2]
    return torch.cat([lin, second[:, :, :2] @ first[:, :, 2:] + second[:, :, 2:]], dim=-1)


def warp_image(
    image: Tensor, affine: Tensor, out_size: int | tuple[int, int], mode: str = "bilinear"
) -> Tensor:
    """Resample ``image [B,C,H,W]`` into the crop defined by ``affine [B,2,3]`` -> ``[B,C,h,w]`` (zeros
    outside).

    kornia's ``warp_affine`` (``align_corners=True``) indexes pixel centres at integers, facezoo at +0.5:
    ``A_kornia = T(-0.5) A T(+0.5)``.
    """
    from kornia.geometry.transform import warp_affine

    if image.ndim != 4:
        raise ValueError(f"image must be [B,C,H,W], got {tuple(image.shape)}")
    _check_affine(affine)
    h, w = (out_size, out_size) if isinstance(out_size, int) else out_size
    a = affine.to(image.device, torch.float64).clone()
    a[:, :, 2] = a[:, :, 2] + 0.5 * a[:, :, :2].sum(-1) - 0.5
    return warp_affine(image, a.to(image.dtype), (h, w), mode=mode, padding_mode="zeros", align_corners=True)


# ---- 300W-LP / AFLW2000-3D pose parameters
# -----------------------------------------------------------------------


def rotation_300wlp(angles: Tensor) -> Tensor:
    """3DDFA's ``RotationMatrix(pitch, yaw, roll)``: ``Pose_Para[:, :3]`` ``[B,3]`` (radians) -> ``[B,3,3]``,
    i.e. :func:`facezoo.geometry.euler_to_matrix` with ``convention="3ddfa"`` (documented there)."""
    return euler_to_matrix(angles, "3ddfa")


def angles_300wlp(rotation: Tensor) -> Tensor:
    """Inverse of :func:`rotation_300wlp`: ``[B,3,3]`` -> ``[B,3]`` (pitch, yaw, roll), yaw in [-pi/2, pi/2]
    (:func:`facezoo.geometry.matrix_to_euler` with ``convention="3ddfa"``)."""
    return matrix_to_euler(rotation, "3ddfa")


def project_300wlp(
    points: Tensor, pose: Tensor, image_height: float | Tensor, y_offset: float = 1.0
) -> Tensor:
    """300W-LP projection: ``p = s R v + t`` then image ``(x, y) = (p_x, H + y_offset - p_y)`` (3DDFA's
    ``height + 1 - y``: ``y_offset = 1``, as :func:`facezoo.geometry.camera_from_300wlp`); z returned as
    ``p_z``.

    Args:
        points: ``[B,N,3]`` model-space points; pose: ``[B,7]`` Pose_Para; image_height: H in pixels.

    Returns:
        ``[B,N,3]``: image x, y (pixels, y down) and depth ``p_z`` (pixel scale, larger = nearer).
    """
    _check_points("points", points, dims=(3,))
    rot = rotation_300wlp(pose[:, :3])
    p = pose[:, 6, None, None] * points @ rot.transpose(1, 2) + pose[:, None, 3:6]
    h = torch.as_tensor(image_height, dtype=p.dtype, device=p.device).reshape(-1, 1) + y_offset
    return torch.stack([p[..., 0], h - p[..., 1], p[..., 2]], dim=-1)


def unproject_300wlp(
    image_points: Tensor, pose: Tensor, image_height: float | Tensor, y_offset: float = 1.0
) -> Tensor:
    """Inverse of :func:`project_300wlp`: image ``[B,N,3]`` (x, y down, depth) -> model-space ``[B,N,3]``."""
    _check_points("image_points", image_points, dims=(3,))
    h = (
        torch.as_tensor(image_height, dtype=image_points.dtype, device=image_points.device).reshape(-1, 1)
        + y_offset
    )
    p = torch.stack([image_points[..., 0], h - image_points[..., 1], image_points[..., 2]], dim=-1)
    rot = rotation_300wlp(pose[:, :3])
    return (p - pose[:, None, 3:6]) @ rot / pose[:, 6, None, None]


def crop_pose_300wlp(
    pose: Tensor, affine: Tensor, image_height: float, out_height: float, y_offset: float = 1.0
) -> Tensor:
    """Transform 300W-LP ``Pose_Para [B,7]`` so that it projects into the crop (MMFace: "the ground truth of
    pose parameters are modified accordingly").

    With the image y flip ``u = F p + (0, H + c)`` (``c = y_offset``, 3DDFA's 1) (``F = diag(1,-1)``) and a
    similarity crop ``u' = L u + b`` (``L = k Q``, ``Q`` a rotation), ``p' = F L F p + F (L (0, H + c) + b) +
    (0, H' + c)``. ``F L F = k Q^T`` is again a scaled rotation, so ``s' = k s``, ``R' = diag(Q^T, 1) R``
    (Euler angles re-extracted), ``t'_xy = F L F t_xy + F (L (0,H+c) + b) + (0,H'+c)`` and ``t'_z = k t_z``
    (depth keeps the pixel scale). Non-similarity affines raise.

    Args:
        pose: ``[B,7]`` [pitch, yaw, roll (rad), tx, ty, tz, scale]; affine: ``[B,2,3]`` original -> crop;
        image_height: H of the original image; out_height: H' of the crop; y_offset: c above.
    """
    _check_affine(affine)
    if pose.ndim != 2 or pose.shape[1] != 7:
        raise ValueError(f"pose must be [B,7], got {tuple(pose.shape)}")
    a = affine.to(pose.device, torch.float64)
    lin, b = a[:, :, :2], a[:, :, 2]
    k = torch.linalg.det(lin).clamp_min(0).sqrt()
    if (k <= 0).any() or not torch.allclose(
        lin @ lin.transpose(1, 2),
        (k**2)[:, None, None] * torch.eye(2, dtype=lin.dtype, device=lin.device),
        atol=1e-6 * float(k.max() ** 2),
    ):
        raise ValueError(
            "crop_pose_300wlp: affine must be a similarity (rotation, isotropic scale, translation)"
        )
    f = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64, device=pose.device))
    flf = f @ lin @ f
    g = torch.zeros(a.shape[0], 3, 3, dtype=torch.float64, device=pose.device)
    g[:, :2, :2] = flf / k[:, None, None]
    g[:, 2, 2] = 1.0
    p64 = pose.double()
    rot = g @ rotation_300wlp(p64[:, :3])
    h0 = torch.tensor([0.0, float(image_height) + y_offset], dtype=torch.float64, device=pose.device)
    t_xy = (flf @ p64[:, 3:5, None]).squeeze(-1) + (f @ ((lin @ h0) + b)[..., None]).squeeze(-1)
    t_xy = t_xy + torch.tensor([0.0, float(out_height) + y_offset], dtype=torch.float64, device=pose.device)
    out = torch.cat([angles_300wlp(rot), t_xy, (k * p64[:, 5])[:, None], (k * p64[:, 6])[:, None]], dim=-1)
    return out.to(pose.dtype)


def flip_pose_300wlp(pose: Tensor, image_width: float) -> Tensor:
    """Pose after mirroring the image (``x -> W - x``) and the model (``v_x -> -v_x``):
    ``M Rx(p) Ry(y) Rz(r) M = Rx(p) Ry(-y) Rz(-r)`` with ``M = diag(-1,1,1)``, ``t_x -> W - t_x``."""
    out = pose.clone()
    out[:, 1], out[:, 2], out[:, 3] = -pose[:, 1], -pose[:, 2], image_width - pose[:, 3]
    return out


DEG = 180.0 / math.pi

"""Similarity alignment of point sets: closed-form Umeyama and ICP with isotropic scale (open3d).

Both return the similarity ``(R, t, s)`` that maps *source* onto *target*: ``target ≈ s * R @ source + t``.
They are used by the reconstruction metrics (MICC RMSE, the Florence NME3D) to bring a predicted mesh into
the frame of a ground-truth scan before distances are measured.

Example:
    >>> import torch
    >>> src = torch.randn(100, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> R, t, s = umeyama(src, 2.0 * src + 1.0)
    >>> round(float(s), 6), torch.allclose(R, torch.eye(3, dtype=torch.float64))
    (2.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["umeyama", "similarity_icp", "similarity_matrix", "apply_similarity", "weak_perspective_icp"]

ArrayLike = torch.Tensor | np.ndarray


def _check_points(name: str, x: ArrayLike, batched: bool = False, any_dim: bool = False) -> None:
    if not isinstance(x, torch.Tensor | np.ndarray):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    d = "D" if any_dim else "3"
    if x.ndim not in ((2, 3) if batched else (2,)) or (x.shape[-1] < 2 if any_dim else x.shape[-1] != 3):
        want = f"[N,{d}] or [B,N,{d}]" if batched else f"[N,{d}]"
        raise ValueError(
            f"{name}: expected shape {want}{' with D >= 2' if any_dim else ''}, got {tuple(x.shape)}"
        )


def _det(m: torch.Tensor) -> torch.Tensor:
    """Determinants of ``[..., D, D]``: closed form for D = 2, 3 (``torch.linalg.det``'s LU costs ~10x more
    on the small batches here), LU otherwise."""
    if m.shape[-1] == 2:
        return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
    if m.shape[-1] == 3:
        return (m[..., 0, :] * torch.linalg.cross(m[..., 1, :], m[..., 2, :], dim=-1)).sum(-1)
    return torch.linalg.det(m)


def umeyama(
    src: ArrayLike, dst: ArrayLike, with_scale: bool = True
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """Closed-form least-squares similarity (Umeyama 1991) from corresponding points, in any dimension D >= 2
    (3D meshes; 2D landmarks: :func:`facezoo.data.estimate_similarity`).

    Minimises ``sum_i ||dst_i - (s R src_i + t)||²`` over rotations ``R`` (det +1, reflections are
    corrected with Umeyama's sign matrix), translations ``t`` and, when ``with_scale``, a scale ``s > 0``
    (else ``s = 1``).

    Args:
        src: source points ``[N,D]`` or batched ``[B,N,D]`` (torch or numpy; N >= D points spanning D
            dimensions).
        dst: corresponding target points, same shape.
        with_scale: estimate the isotropic scale.

    Returns:
        ``R [..,D,D]``, ``t [..,D]``, ``s [..]`` in the input's type; torch results keep its device and dtype.

    Example:
        >>> R, t, s = umeyama(torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64) + 1.0)
        >>> [round(v, 9) for v in t.tolist()], round(float(s), 9)
        ([1.0, 1.0, 1.0], 1.0)
    """
    _check_points("src", src, batched=True, any_dim=True)
    _check_points("dst", dst, batched=True, any_dim=True)
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"dst: expected the shape of src {tuple(src.shape)}, got {tuple(dst.shape)}")
    if src.shape[-2] < src.shape[-1]:
        raise ValueError(
            f"src: need at least {src.shape[-1]} points in {src.shape[-1]}D, got {src.shape[-2]}"
        )
    as_numpy = isinstance(src, np.ndarray)
    s_t = torch.as_tensor(src)
    d_t = torch.as_tensor(dst, device=s_t.device)
    dtype = torch.promote_types(s_t.dtype, d_t.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    s_t, d_t = s_t.to(dtype), d_t.to(dtype)

    mu_s = s_t.mean(dim=-2, keepdim=True)
    mu_d = d_t.mean(dim=-2, keepdim=True)
    xs, xd = s_t - mu_s, d_t - mu_d
    n = s_t.shape[-2]
    cov = xd.transpose(-1, -2) @ xs / n  # Σ_xy = 1/n Σ (d - μd)(s - μs)ᵀ
    U, S, Vh = torch.linalg.svd(cov)
    # Sign fix: force det(R) = +1 (a reflection would otherwise fit mirrored data better).
    sign = torch.where(_det(U @ Vh) < 0, -1.0, 1.0).to(S.dtype)
    D = torch.ones_like(S)
    D[..., -1] = sign
    R = U @ torch.diag_embed(D) @ Vh
    if with_scale:
        var_s = (xs**2).sum(dim=(-1, -2)) / n
        s = (S * D).sum(dim=-1) / var_s
    else:
        s = torch.ones(s_t.shape[:-2], dtype=dtype, device=s_t.device)
    t = mu_d.squeeze(-2) - s[..., None] * (R @ mu_s.transpose(-1, -2)).squeeze(-1)
    if as_numpy:
        return R.numpy(), t.numpy(), s.numpy()
    return R, t, s


def similarity_matrix(R: ArrayLike, t: ArrayLike, s: ArrayLike | float = 1.0) -> np.ndarray:
    """4x4 homogeneous float64 matrix ``[[s R, t], [0, 1]]`` of one similarity (numpy)."""
    T = np.eye(4)
    T[:3, :3] = float(np.asarray(s).reshape(())) * np.asarray(R, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def _decompose(T: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    A = T[:3, :3]
    s = float(np.cbrt(np.linalg.det(A)))
    return A / s, T[:3, 3].copy(), s


def apply_similarity(points: ArrayLike, R: ArrayLike, t: ArrayLike, s: ArrayLike | float = 1.0) -> ArrayLike:
    """``s * R @ p + t`` for points ``[N,3]`` (torch or numpy, result in the type of ``points``)."""
    if isinstance(points, np.ndarray):
        return float(np.asarray(s)) * points @ np.asarray(R).T + np.asarray(t).reshape(1, 3)
    R_t = torch.as_tensor(R, dtype=points.dtype, device=points.device)
    t_t = torch.as_tensor(t, dtype=points.dtype, device=points.device)
    s_t = torch.as_tensor(s, dtype=points.dtype, device=points.device)
    return s_t * points @ R_t.T + t_t.reshape(1, 3)


def _to_numpy64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float64, order="C")  # a copy; 0-d stays 0-d


def _rms_radius(x: np.ndarray) -> float:
    return float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))


def centroid_init(source: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Initial similarity from centroids and RMS radii (identity rotation), as a 4x4 float64 matrix.

    ``s = rms(target) / rms(source)`` and ``t = mean(target) - s mean(source)``. It assumes both sets are
    already roughly oriented alike (facezoo's model frame) and cover comparable regions.
    """
    src, dst = _to_numpy64(source), _to_numpy64(target)
    s = _rms_radius(dst) / max(_rms_radius(src), 1e-12)
    return similarity_matrix(np.eye(3), dst.mean(0) - s * src.mean(0), s)


def _cloud(points: np.ndarray, normals: np.ndarray | None = None):
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is not None:
        pc.normals = o3d.utility.Vector3dVector(normals)
    return pc


def similarity_icp(
    source: ArrayLike,
    target: ArrayLike,
    init: ArrayLike | tuple | str | None = None,
    *,
    with_scale: bool = True,
    stages: tuple[str, ...] = ("point",),
    max_correspondence_distance: float | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-12,
    target_normals: ArrayLike | None = None,
) -> tuple[ArrayLike, ArrayLike, ArrayLike, dict[str, Any]]:
    """Iterative closest point with isotropic scale: ``target ≈ s R source + t`` (open3d registration).

    Each stage is one open3d ``registration_icp`` run started from the previous stage's result:

    - ``"point"``: point-to-point ICP with ``TransformationEstimationPointToPoint(with_scaling=with_scale)``
      (each iteration: nearest target point of every source point within ``max_correspondence_distance``,
      then the closed-form Umeyama similarity of those pairs);
    - ``"plane"``: rigid point-to-plane ICP (``TransformationEstimationPointToPlane``) against the target's
      normals, the scale held at its current value (open3d's point-to-plane estimator has no scale).

    Point-to-point ICP converges slowly when the source slides along the surface and, on regularly sampled
    surfaces (grids), can stall half a sample spacing off; ``("point", "plane", "point")`` fixes that: the
    plane stage removes the sliding, the final point stage re-estimates the scale (and is exact when both
    sets sample the same points). Choices (the papers are silent): the default initial alignment is
    :func:`centroid_init`; ``max_correspondence_distance`` defaults to half the target's RMS radius (loose
    enough to converge from a rough start, tight enough to ignore far-away outliers); a stage stops when the
    relative change of fitness and inlier RMSE falls under ``tolerance`` (open3d's criteria) or after
    ``max_iterations`` iterations. Computation is in float64 on the CPU whatever the inputs' device.

    Args:
        source: points to move ``[N,3]`` (torch or numpy).
        target: fixed points ``[M,3]``.
        init: ``None`` or ``"centroid"`` (centroid + RMS-radius scale), a 4x4 matrix, or a tuple ``(R, t, s)``
            (e.g. from :func:`umeyama` on corresponding landmarks).
        with_scale: estimate the isotropic scale in the ``"point"`` stages.
        stages: sequence of ``"point"`` / ``"plane"``.
        max_correspondence_distance: pairs farther apart (target units) are ignored.
        max_iterations: iteration cap per stage.
        tolerance: relative fitness / RMSE change that stops a stage.
        target_normals: ``[M,3]`` unit normals for ``"plane"`` stages; estimated by open3d (30-NN PCA,
            orientation irrelevant for point-to-plane) when absent.

    Returns:
        ``R [3,3]``, ``t [3]``, ``s []`` (torch on the source's device/dtype when the source is a tensor, else
        numpy float64) and ``info``: ``fitness`` (fraction of source points with a correspondence in the last
        stage), ``inlier_rmse`` (target units), ``transformation`` (4x4 numpy) and
        ``max_correspondence_distance``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> tgt = torch.rand(2000, 3, generator=g, dtype=torch.float64) * torch.tensor([50.0, 60.0, 20.0])
        >>> R, t, s, info = similarity_icp(tgt / 1.1 - 2.0, tgt)
        >>> abs(float(s) - 1.1) < 1e-6
        True
    """
    import open3d as o3d

    reg = o3d.pipelines.registration
    _check_points("source", source)
    _check_points("target", target)
    if source.shape[0] < 3 or target.shape[0] < 3:
        raise ValueError(
            f"source/target: need at least 3 points each, got {source.shape[0]} and {target.shape[0]}"
        )
    if not stages or any(st not in ("point", "plane") for st in stages):
        raise ValueError(f"stages: expected a non-empty sequence of 'point'/'plane', got {stages!r}")
    src, dst = _to_numpy64(source), _to_numpy64(target)

    if init is None or (isinstance(init, str) and init == "centroid"):
        T = centroid_init(src, dst)
    elif isinstance(init, str):
        raise ValueError(f"init: expected None, 'centroid', a 4x4 matrix or (R, t, s), got {init!r}")
    elif isinstance(init, tuple):
        if len(init) != 3:
            raise ValueError(f"init: a tuple must be (R, t, s), got {len(init)} items")
        T = similarity_matrix(*(_to_numpy64(v) for v in init))
    else:
        T = _to_numpy64(init)
        if T.shape != (4, 4):
            raise ValueError(f"init: expected a 4x4 matrix, got shape {T.shape}")

    if max_correspondence_distance is None:
        max_correspondence_distance = 0.5 * _rms_radius(dst)
    if max_correspondence_distance <= 0:
        raise ValueError(f"max_correspondence_distance: expected > 0, got {max_correspondence_distance}")

    criteria = reg.ICPConvergenceCriteria(
        relative_fitness=tolerance, relative_rmse=tolerance, max_iteration=max_iterations
    )
    pc_src, pc_dst = _cloud(src), _cloud(dst)
    if "plane" in stages:
        if target_normals is None:
            pc_dst.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
        else:
            _check_points("target_normals", target_normals)
            if target_normals.shape[0] != dst.shape[0]:
                raise ValueError(
                    f"target_normals: expected [{dst.shape[0]},3] like target, "
                    f"got {tuple(target_normals.shape)}"
                )
            pc_dst.normals = o3d.utility.Vector3dVector(_to_numpy64(target_normals))
    res = None
    for stage in stages:
        if stage == "point":
            est = reg.TransformationEstimationPointToPoint(with_scaling=with_scale)
        else:
            est = reg.TransformationEstimationPointToPlane()
        # open3d composes rigid updates on the left of the initial matrix, so a scaled init keeps its scale.
        res = reg.registration_icp(pc_src, pc_dst, max_correspondence_distance, T, est, criteria)
        T = np.asarray(res.transformation).copy()

    R, t, s = _decompose(T)
    info = {
        "fitness": float(res.fitness),
        "inlier_rmse": float(res.inlier_rmse),
        "transformation": T,
        "max_correspondence_distance": float(max_correspondence_distance),
    }
    if isinstance(source, torch.Tensor):
        kw = {"device": source.device, "dtype": source.dtype if source.is_floating_point() else None}
        return torch.as_tensor(R, **kw), torch.as_tensor(t, **kw), torch.as_tensor(s, **kw), info
    return R, t, np.float64(s), info


def weak_perspective_icp(
    camera,
    vertices: torch.Tensor,
    targets: list[torch.Tensor],
    source_mask: torch.Tensor | None = None,
    max_iterations: int = 50,
    max_correspondence_distance: float | None = None,
    min_points: int = 10,
    max_scale_change: float = 2.0,
):
    """Refine a :class:`~facezoo.geometry.WeakPerspective` camera by similarity ICP of the posed mesh onto
    image-space surface points (MMFace §3.2.3: the mesh ``S(α, β)`` aligned to the surface of the predicted
    volume, started from the network's pose).

    Frame: ``targets`` are ``(x, y, z)`` with ``x, y`` pixels (+y down) and ``z`` pixel-unit depth toward the
    viewer up to an unknown offset (:func:`facezoo.geometry.voxelize.volume_surface`). In the right-handed
    frame ``(x, -y, z)`` a weak-perspective camera is the similarity ``s R v + (t_x, -t_y, t_z)``, so
    :func:`similarity_icp` (point-to-point, isotropic scale) starts from the camera's ``(s, R, t)`` (``t_z``
    matching the mean depths) and its result is the refined camera; ``t_z`` is dropped (weak perspective has
    no depth). Rows with fewer than ``min_points`` targets or source points, or whose ICP finds no
    correspondence or changes the scale by more than ``max_scale_change``, keep their camera.

    Args:
        camera: ``WeakPerspective`` with batch ``B``: the initial pose.
        vertices: ``[B,V,3]`` model-space mesh (mm).
        targets: ``B`` tensors ``[N_b,3]`` of surface points.
        source_mask: optional bool ``[B,V]`` or ``[V]``: the vertices that take part (e.g. those facing the
            viewer; default all).
        max_iterations, max_correspondence_distance: :func:`similarity_icp`'s (default distance: half the
            target's RMS radius).
        min_points: fewest points on either side for a row to be refined.
        max_scale_change: a result whose scale differs from the initial one by more than this factor is
            refused (the row keeps its camera): point-to-point ICP with scale can collapse onto a degenerate
            target (e.g. the volume of an untrained network).

    Returns:
        A new ``WeakPerspective`` (same device/dtype; no gradients).
    """
    from facezoo.geometry.cameras import WeakPerspective

    if not isinstance(camera, WeakPerspective):
        raise TypeError(f"camera: expected a WeakPerspective, got {type(camera).__name__}")
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected [B,V,3], got {getattr(vertices, 'shape', type(vertices))}")
    b = vertices.shape[0]
    if len(targets) != b or camera.batch_size not in (1, b):
        raise ValueError(
            f"targets: expected {b} point sets (one per mesh) and a camera of batch 1 or {b}, got "
            f"{len(targets)} and {camera.batch_size}"
        )
    if source_mask is not None and source_mask.ndim == 1:
        source_mask = source_mask[None].expand(b, -1)
    flip = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    scale = camera.scale.detach().double().cpu().expand(b).clone()
    rot = camera.rotation.detach().double().cpu().expand(b, 3, 3).clone()
    t2d = camera.t2d.detach().double().cpu().expand(b, 2).clone()
    verts = vertices.detach().double().cpu()
    for i in range(b):
        src = verts[i] if source_mask is None else verts[i][source_mask[i].cpu()]
        tgt = targets[i].detach().double().cpu() * flip
        if len(src) < min_points or len(tgt) < min_points:
            continue
        posed = scale[i] * src @ rot[i].T
        tz = tgt[:, 2].mean() - posed[:, 2].mean()
        t0 = torch.stack((t2d[i, 0], -t2d[i, 1], tz))
        r_i, t_i, s_i, info = similarity_icp(
            src, tgt, init=(rot[i], t0, scale[i]), max_iterations=max_iterations,
            max_correspondence_distance=max_correspondence_distance,
        )  # fmt: skip
        ok = info["fitness"] > 0 and bool(torch.isfinite(r_i).all() and torch.isfinite(t_i).all()) and s_i > 0
        ok = ok and 1.0 / max_scale_change <= float(s_i / scale[i]) <= max_scale_change
        if ok:  # no correspondence at all (e.g. an untrained volume far off): the row keeps its camera
            rot[i], scale[i], t2d[i] = r_i, s_i, torch.stack((t_i[0], -t_i[1]))
    kw = {"device": camera.device, "dtype": camera.dtype}
    return WeakPerspective(scale.to(**kw), rot.to(**kw), t2d.to(**kw))

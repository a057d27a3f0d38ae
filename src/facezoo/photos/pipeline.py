"""``reconstruct_photos``: photos with landmarks -> one :class:`PhotoResult` per photo, by ``regress`` (the
method's network), ``fit`` (:func:`facezoo.fitting.fit_landmarks`, then optionally
:func:`facezoo.fitting.refine_photometric`; no network) or ``regress+fit`` (the network's output as the fit's
start, refined per photo by the same fitting).

Photos are fitted in batches (``batch_size``, default all) grouped by their number of landmarks (68 or 5);
everything runs on ``device``. With ``regress+fit`` the camera kind is the network's (Deep3DFace:
perspective); with ``fit`` it is ``camera`` (weak perspective by default, as eos).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from facezoo.fitting import fit_landmarks, refine_photometric
from facezoo.fitting.landmark_fit import landmark_normaliser
from facezoo.photos.models import ResolvedModel, regress_photos
from facezoo.photos.sources import Photo

__all__ = ["PhotoResult", "reconstruct_photos", "METHODS"]

METHODS = ("regress", "fit", "regress+fit")


@dataclass
class PhotoResult:
    """One reconstructed photo. Tensors are CPU float64: ``vertices [V,3]`` (model space, mm),
    ``landmarks3d [68,3]``, ``landmarks2d [68,2]`` (photo pixels), ``colours [V,3]`` albedo or None,
    ``light [27]`` SH or None; ``camera`` (batch 1, photo pixels); ``params`` name -> ``[K]``; ``nme``: the
    mean distance of the model's points to the input landmarks over ``sqrt(w h)`` of their box."""

    photo: Photo
    vertices: Tensor
    triangles: Tensor
    landmarks3d: Tensor
    landmarks2d: Tensor
    camera: object
    params: dict[str, Tensor]
    colours: Tensor | None = None
    light: Tensor | None = None
    nme: float = float("nan")
    info: dict = field(default_factory=dict)


def _input_nme(pred68: Tensor, target: Tensor) -> float:
    from facezoo.data.landmarks import landmarks68_to_5

    pred = pred68 if target.shape[0] == 68 else torch.as_tensor(landmarks68_to_5(pred68.numpy()))
    norm = landmark_normaliser(target[None].double())[0]
    return float((pred.double() - target.double()).norm(dim=-1).mean() / norm)


def reconstruct_photos(
    photos: list[Photo],
    model: ResolvedModel,
    method: Literal["regress", "fit", "regress+fit"] = "fit",
    *,
    photometric: bool = False,
    camera: Literal["weak", "perspective"] = "weak",
    contour: Literal["auto", "moving", "fixed"] = "auto",
    iterations: int = 15,
    photometric_steps: int = 60,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    log=print,
) -> list[PhotoResult]:
    """Reconstruct ``photos`` with ``model`` (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    if method != "fit" and model.method is None:
        raise ValueError(
            f"--method {method} needs a network: --model must be a checkpoint (got the morphable model "
            f"{model.name!r}; use --method fit)"
        )
    device = torch.device(device)
    morph = model.morphable.to(device)
    if model.method is not None:
        model.method.to(device)
    if photometric and not morph.has_texture:
        log(f"facezoo reconstruct: {morph.name!r} has no albedo model, so the photometric refinement is off")
        photometric = False
    results: list[PhotoResult | None] = [None] * len(photos)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(photos):
        groups.setdefault(p.landmarks.shape[0], []).append(i)
    step = batch_size or len(photos)
    for rows_all in groups.values():
        for start in range(0, len(rows_all), step):
            rows = rows_all[start : start + step]
            batch = [photos[i] for i in rows]
            for i, res in zip(rows, _batch(batch, model, morph, method, photometric, camera,
                                           contour, iterations, photometric_steps, device)):  # fmt: skip
                results[i] = res
    return [r for r in results if r is not None]


def _batch(photos, model, morph, method, photometric, camera, contour, iterations, photometric_steps, device):
    images = [p.image for p in photos]
    lms = [p.landmarks for p in photos]
    x = torch.stack(lms).to(device)
    rec = None
    if method in ("regress", "regress+fit"):
        rec = regress_photos(model.method, images, lms)
    out = []
    if method == "regress":
        for j, p in enumerate(photos):
            params = {k: v[j].detach().double().cpu() for k, v in rec.params.items()}
            out.append(PhotoResult(
                photo=p, vertices=rec.vertices[j].double().cpu(), triangles=rec.triangles.cpu(),
                landmarks3d=rec.landmarks3d[j].double().cpu(), landmarks2d=rec.landmarks2d[j].double().cpu(),
                camera=rec.camera[j].to("cpu"), params=params,
                colours=None if rec.colours is None else rec.colours[j].double().cpu(),
                light=params.get("light"),
            ))  # fmt: skip
        return _finish(out)
    init = None
    if rec is not None:
        if "id" not in rec.params or rec.params["id"].shape[-1] != morph.n_id:
            raise ValueError(
                f"--method regress+fit: {model.name} does not regress the linear model's coefficients "
                f"('id' [B,{morph.n_id}]); use --method regress"
            )
        init = {"id": rec.params["id"], "exp": rec.params.get("exp"), "camera": rec.camera}
    fit = fit_landmarks(morph, x, init=init, camera=camera, contour=contour, iterations=iterations)
    params = dict(fit.params)
    verts, lm3d, lm2d, cam = fit.vertices, fit.landmarks3d, fit.landmarks2d, fit.camera
    colours = light = None
    if photometric:
        ph = refine_photometric(morph, images, fit, x, steps=photometric_steps)
        params, verts, lm3d, lm2d, cam = ph.params, ph.vertices, ph.landmarks3d, ph.landmarks2d, ph.camera
        colours, light = ph.colours, ph.params["light"]
    elif rec is not None and rec.colours is not None:
        colours = rec.colours.double()
        light = rec.params.get("light")
        params.update({k: v for k, v in rec.params.items() if k in ("tex", "light")})
    for j, p in enumerate(photos):
        out.append(PhotoResult(
            photo=p, vertices=verts[j].double().cpu(), triangles=morph.triangles.cpu(),
            landmarks3d=lm3d[j].double().cpu(), landmarks2d=lm2d[j].double().cpu(), camera=cam[j].to("cpu"),
            params={k: v[j].detach().double().cpu() for k, v in params.items()},
            colours=None if colours is None else colours[j].detach().double().cpu(),
            light=None if light is None else light[j].detach().double().cpu(),
            info={"fit_iterations": fit.iterations},
        ))  # fmt: skip
    return _finish(out)


def _finish(results: list[PhotoResult]) -> list[PhotoResult]:
    for r in results:
        r.nme = _input_nme(r.landmarks2d, r.photo.landmarks)
    return results

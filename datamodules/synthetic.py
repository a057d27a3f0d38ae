"""``SyntheticFaces``: faces of any morphable model rendered with facezoo's renderer, with full ground truth.

Every sample is a deterministic function of ``(seed, split, index)``: identity, expression and albedo
coefficients (in units of std), a pose, Deep3DFace-style SH light (27 coefficients, ambient 0.8), a smooth
random background and, optionally, an occluder (a random flat-coloured ellipse or rectangle over part of the
face). The camera is the one Deep3DFace uses (:meth:`facezoo.geometry.Perspective.deep3d`, focal 1015 px for a
224 crop, scaled with ``image_size``; the model origin about ``camera_distance`` mm away), so a Deep3DFace
R-Net can fit these images exactly.

Ground truth: ``params`` (``id``, ``exp``, ``tex``, ``angles`` (pitch, yaw, roll) rad, ``translation``
(Deep3DFace decimetres), ``light [27]``, ``vertices [V,3]`` model-space mm), ``landmarks68`` / ``landmarks5``
(crop pixels; the 5 points as Deep3DFace's ``extract_5p``), ``mask`` (visible face pixels: rendered coverage
minus the occluder), ``identity``, ``view``, ``yaw`` (degrees), ``index``.

Sets (``set_size > 1``) stack a view axis on every tensor (``image [M,3,H,W]``, ``params["id"] [M,K]``...):
``set_mode="identity"`` gives M images of one identity (same id and albedo; expression, pose, light and
occluders vary: C-Net training sets) and ``"multiview"`` one face (same id, expression, albedo, light) seen
from M yaws spread over ``[-yaw_range, yaw_range]`` (for M = 3: frontal, +yaw, -yaw; MVF-Net's triplets).

Speed: samples are rendered in batches through ``Dataset.__getitems__`` (PyTorch's batched fetch), and cached
in memory after the first epoch when ``cache`` is on; see ``benchmarks/deep3d.py`` for samples/s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from facezoo.data.sample import collate
from facezoo.data.samplers import ResumableDataLoader, ShardedRandomSampler

from ._base import batch_keys, check_loader_sizes

SPLITS = {"train": 0, "val": 1, "test": 2, "predict": 3}


def _landmarks5(lm68: Tensor) -> Tensor:
    """``[...,68,2]`` -> ``[...,5,2]`` (Deep3DFace ``extract_5p``: eye centres, nose tip, mouth corners)."""
    return torch.stack(
        (lm68[..., [36, 39], :].mean(-2), lm68[..., [42, 45], :].mean(-2), lm68[..., 30, :], lm68[..., 48, :],
         lm68[..., 54, :]), dim=-2,
    )  # fmt: skip


class SyntheticFaceDataset(Dataset):
    """One split of :class:`SyntheticFaces` (see the module docstring); ``__getitems__`` renders in
    batches."""

    def __init__(self, dm: SyntheticFaces, split: str, length: int) -> None:
        self.dm = dm
        self.split = split
        self.length = int(length)
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        for i in indices:
            if not 0 <= int(i) < self.length:
                raise IndexError(f"SyntheticFaces[{self.split}]: index {i} out of range [0, {self.length})")
        todo = [int(i) for i in indices if int(i) not in self._cache]
        if todo:
            fresh = self.dm.render_samples(self.split, todo)
            if not self.dm.cache:
                lookup = dict(zip(todo, fresh, strict=True))
                return [lookup[int(i)] for i in indices]
            self._cache.update(zip(todo, fresh, strict=True))
        return [self._cache[int(i)] for i in indices]


class SyntheticFaces(LightningDataModule):
    """Rendered faces of a morphable model with complete ground truth (module docstring).

    Args:
        morphable_model: model spec (``"procedural"``, ``"procedural:<n_vertices>"`` or a facezoo ``.h5``).
        image_size: square crop side (pixels).
        batch_size: samples (or sets) per batch.
        num_train, num_val, num_test, num_predict: split sizes (samples or sets).
        set_size: images per sample (1 = single images ``[3,H,W]``).
        set_mode: ``"identity"`` or ``"multiview"`` (used when ``set_size > 1``).
        yaw_range, pitch_range, roll_range: pose ranges in degrees (uniform in ``[-r, r]``).
        id_scale, exp_scale, tex_scale: std of the sampled coefficients (units of the model's std).
        light_scale: std of the non-ambient SH coefficients.
        shift_range: lateral translation range (Deep3DFace units, dm; uniform in ``[-r, r]`` for x and y).
        depth_range: depth translation range (dm; uniform in ``[-r, r]``; 0.5 = +-5 % of the face's scale at
            1 m). Depth and face size are nearly interchangeable under a 1 m perspective camera, so a narrow
            range makes identity easier to read from a small crop (CPU demos).
        background: ``"smooth"`` (random bicubic-upsampled 4x4 colour field) or ``"plain"`` (one random
            colour per image).
        occluder_prob: probability that an image gets an occluder.
        focal, camera_distance: Deep3DFace camera (focal px for a 224 crop; mm to the model origin).
        seed: base seed; every sample depends only on ``(seed, split, index)``.
        cache: keep rendered samples in memory.
        num_workers: DataLoader workers.
        renderer_backend: rasterizer backend for rendering the data.
    """

    protocol = "reconstruction"
    provides = batch_keys(
        "image", "landmarks68", "landmarks5", "identity", "view", "yaw", "mask", "index",
        params=("id", "exp", "tex", "angles", "translation", "light", "vertices"),
    )  # fmt: skip
    partial = ()  # every sample has every key (see FaceDataModule for the contract)

    def __init__(
        self,
        morphable_model: str = "procedural",
        image_size: int = 224,
        batch_size: int = 5,
        num_train: int = 2000, num_val: int = 50, num_test: int = 50, num_predict: int = 8,
        set_size: int = 1,
        set_mode: str = "identity",
        yaw_range: float = 45.0, pitch_range: float = 15.0, roll_range: float = 10.0,
        id_scale: float = 1.0, exp_scale: float = 0.7, tex_scale: float = 0.5,
        light_scale: float = 0.12,
        shift_range: float = 0.05, depth_range: float = 0.5,
        background: str = "smooth",
        occluder_prob: float = 0.0,
        focal: float = 1015.0, camera_distance: float = 1000.0,
        seed: int = 0,
        cache: bool = True,
        num_workers: int = 0,
        renderer_backend: str = "auto",
    ) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        if set_mode not in ("identity", "multiview"):
            raise ValueError(f"set_mode: expected 'identity' or 'multiview', got {set_mode!r}")
        if background not in ("smooth", "plain"):
            raise ValueError(f"background: expected 'smooth' or 'plain', got {background!r}")
        if shift_range < 0 or depth_range < 0:
            raise ValueError(f"shift_range, depth_range: expected >= 0, got {shift_range}, {depth_range}")
        if set_size < 1:
            raise ValueError(f"set_size: expected >= 1, got {set_size}")
        check_loader_sizes(image_size, batch_size, num_workers)
        if not 0.0 <= occluder_prob <= 1.0:
            raise ValueError(f"occluder_prob: expected a probability, got {occluder_prob}")
        self.morphable_model = morphable_model
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test, "predict": num_predict}
        self.set_size = int(set_size)
        self.set_mode = set_mode
        self.cache = bool(cache)
        self.num_workers = int(num_workers)
        self._model = None
        self._renderer = None
        self._datasets: dict[str, SyntheticFaceDataset] = {}

    # -- the model and renderer are built lazily (in each worker)
    @property
    def model(self):
        if self._model is None:
            from facezoo.methods.base import build_morphable

            self._model = build_morphable(self.morphable_model)
        return self._model

    @property
    def renderer(self):
        if self._renderer is None:
            from facezoo.render import MeshRenderer

            s = self.image_size
            self._renderer = MeshRenderer((s, s), backend=self.hparams.renderer_backend)
        return self._renderer

    def dataset(self, split: str) -> SyntheticFaceDataset:
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
        if split not in self._datasets:
            self._datasets[split] = SyntheticFaceDataset(self, split, self.sizes[split])
        return self._datasets[split]

    # -- sampling
    def _generator(self, split: str, index: int) -> torch.Generator:
        state = np.random.SeedSequence([int(self.hparams.seed), SPLITS[split], int(index)]).generate_state(2)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def sample_params(self, split: str, index: int) -> dict[str, Tensor]:
        """Ground-truth parameters of one sample: every tensor ``[M,...]`` (M = set_size)."""
        h, m = self.hparams, self.set_size
        g = self._generator(split, index)
        model = self.model

        def randn(*shape):
            return torch.randn(*shape, generator=g)

        def uniform(r, *shape):
            return (torch.rand(*shape, generator=g) * 2 - 1) * r

        ident = randn(1, model.n_id).expand(m, -1) * h.id_scale
        tex = randn(1, model.n_tex).expand(m, -1) * h.tex_scale
        multiview = m > 1 and self.set_mode == "multiview"
        exp = (randn(1, model.n_exp).expand(m, -1) if multiview else randn(m, model.n_exp)) * h.exp_scale
        deg = math.pi / 180
        pitch, roll = uniform(h.pitch_range * deg, m), uniform(h.roll_range * deg, m)
        if multiview:
            yaws = torch.tensor([0.0, 1.0, -1.0]) if m == 3 else torch.linspace(-1.0, 1.0, m)
            yaw = yaws * h.yaw_range * deg * (0.8 + 0.2 * torch.rand(m, generator=g))
        else:
            yaw = uniform(h.yaw_range * deg, m)
        angles = torch.stack((pitch, yaw, roll), -1)
        shift, depth = h.shift_range, h.depth_range
        translation = torch.stack((uniform(shift, m), uniform(shift, m), uniform(depth, m)), -1)  # dm
        light = randn(1 if multiview else m, 3, 9) * h.light_scale * 0.5
        light[..., 1:] += randn(1 if multiview else m, 1, 8) * h.light_scale  # mostly monochrome directions
        light[..., 0] += 0.8  # Deep3DFace's ambient
        light = light.expand(m, 3, 9).reshape(m, 27)
        return {"id": ident.clone(), "exp": exp.clone(), "tex": tex.clone(), "angles": angles,
                "translation": translation, "light": light.clone()}  # fmt: skip

    def camera(self, angles: Tensor, translation: Tensor):
        from facezoo.geometry import Perspective

        s = self.image_size
        h = self.hparams
        return Perspective.deep3d(
            angles, translation, focal=h.focal * s / 224.0, center=s / 2.0,
            camera_distance=h.camera_distance / 100.0, unit_mm=100.0,
        )  # fmt: skip

    def _background(self, g: torch.Generator, n: int) -> Tensor:
        s = self.image_size
        if self.hparams.background == "plain":
            return (torch.rand(n, 3, 1, 1, generator=g) * 0.8 + 0.1).expand(n, 3, s, s).contiguous()
        coarse = torch.rand(n, 3, 4, 4, generator=g) * 0.8 + 0.1
        return F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=False).clamp(0, 1)

    def _occluder(self, g: torch.Generator, lm: Tensor) -> Tensor:
        """A soft-free binary occluder mask ``[1,H,W]`` centred near a random landmark."""
        s = self.image_size
        c = lm[int(torch.randint(0, 68, (1,), generator=g))]
        r = (0.08 + 0.12 * torch.rand(2, generator=g)) * s
        yy, xx = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
        dx, dy = (xx - c[0]) / r[0], (yy - c[1]) / r[1]
        if bool(torch.rand(1, generator=g) < 0.5):
            return ((dx**2 + dy**2) <= 1.0).float()[None]
        return ((dx.abs() <= 1.0) & (dy.abs() <= 1.0)).float()[None]

    def render_samples(self, split: str, indices: list[int]) -> list[dict[str, Any]]:
        """Render the samples ``indices`` of ``split`` in one batch (deterministic per index)."""
        with torch.no_grad():
            return self._render_samples(split, indices)

    def _render_samples(self, split: str, indices: list[int]) -> list[dict[str, Any]]:
        m = self.set_size
        per = [self.sample_params(split, i) for i in indices]
        p = {k: torch.cat([q[k] for q in per]) for k in per[0]}
        model = self.model
        vertices = model(p["id"], p["exp"])
        colours = model.texture(p["tex"]).clamp(0, 1)
        cam = self.camera(p["angles"], p["translation"])
        gens = [self._generator(split, i) for i in indices]
        for gen in gens:  # decorrelate from sample_params' stream
            gen.manual_seed(gen.initial_seed() ^ 0x5DEECE66D)
        bg = torch.cat([self._background(gen, m) for gen in gens])
        out = self.renderer(
            vertices, model.triangles, cam, colors=colours, lighting=p["light"], background=bg
        )
        lm68 = cam.project(model.landmarks(vertices))
        image, mask = out.image.clamp(0, 1), out.mask.clamp(0, 1)
        samples = []
        for k, (idx, gen) in enumerate(zip(indices, gens, strict=True)):
            rows = slice(k * m, (k + 1) * m)
            img, msk = image[rows].clone(), mask[rows].clone()
            for j in range(m):
                if self.hparams.occluder_prob > 0 and bool(
                    torch.rand(1, generator=gen) < self.hparams.occluder_prob
                ):
                    occ = self._occluder(gen, lm68[k * m + j])
                    colour = torch.rand(3, 1, 1, generator=gen)
                    img[j] = img[j] * (1 - occ) + colour * occ
                    msk[j] = msk[j] * (1 - occ)
            params = {key: v[rows] for key, v in p.items()}
            params["vertices"] = vertices[rows]
            sample = {
                "image": img, "landmarks68": lm68[rows], "landmarks5": _landmarks5(lm68[rows]),
                "params": params,
                "mask": msk, "identity": int(idx), "view": torch.arange(m),
                "yaw": (p["angles"][rows, 1] * 180 / math.pi), "index": int(idx),
            }  # fmt: skip
            if m == 1:
                sample = _squeeze(sample)
            samples.append(sample)
        return samples

    # -- loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if shuffle:  # training: a seeded per-epoch order that survives a restart (facezoo.data.samplers)
            ds = self.dataset(split)
            return ResumableDataLoader(
                ds, batch_size=self.batch_size, sampler=ShardedRandomSampler(ds, seed=int(self.hparams.seed)),
                num_workers=self.num_workers, collate_fn=collate, persistent_workers=self.num_workers > 0,
            )  # fmt: skip
        return DataLoader(
            self.dataset(split), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            collate_fn=collate, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)


def _squeeze(sample: dict[str, Any]) -> dict[str, Any]:
    """Drop the view axis of a single-image sample."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if key == "params":
            out[key] = {k: v[0] for k, v in value.items()}
        elif key == "view":
            out[key] = 0
        elif key == "yaw":
            out[key] = float(value[0])
        elif isinstance(value, Tensor):
            out[key] = value[0]
        else:
            out[key] = value
    return out

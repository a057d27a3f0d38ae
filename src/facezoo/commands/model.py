"""Morphable models: convert a source model to facezoo's HDF5 file, print its summary, render a preview.

Examples::

    facezoo model convert path/to/Deep3DFace/BFM --format bfm-deep3d -o bfm_deep3d.h5
    facezoo model convert eos/share --format sfm -o sfm.h5
    facezoo model convert ICT-FaceKit/FaceXModel --format ict -o ict.h5
    facezoo model convert --format procedural --n-vertices 35709 -o procedural.h5
    facezoo model info sfm.h5
    facezoo model info ../shared/data/sfm --format sfm   # read a source model directly
    facezoo model preview sfm.h5 -o sfm.png          # mean and +-2 sigma of the first id / exp components
    facezoo model preview procedural -o procedural.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "convert morphable models to facezoo's HDF5 file, show their summary, render previews"

FORMATS = {
    "bfm-deep3d": "Deep3DFace's BFM/ folder (01_MorphableModel.mat, Exp_Pca.bin, std_exp.txt, index files)",
    "bfm-3ddfa": "BFM + 3DDFA files (01_MorphableModel.mat, Model_Expression.mat, trimIndex, tri, keypoints)",
    "bfm-3ddfa-mean": "3DDFA's u_shp.npy/u_exp.npy + tri.mat + keypoints_sim.npy (mean only, no bases)",
    "sfm": "eos share/ folder (sfm_shape_*.bin, expression_blendshapes_*.bin, ibug_to_sfm.txt)",
    "ict": "ICT-FaceKit FaceXModel/ folder (OBJs + vertex_indices.json) or the derived .npz",
    "procedural": "facezoo's built-in procedural face (no SRC; --n-vertices, --seed)",
}


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{convert,info,preview}")
    conv = sub.add_parser("convert", help="convert a source model to a facezoo .h5 file")
    conv.add_argument("src", nargs="*", type=Path, help="source folder(s) or file, searched in order")
    conv.add_argument(
        "--format",
        required=True,
        choices=sorted(FORMATS),
        help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    conv.add_argument("-o", "--output", required=True, type=Path, help="the .h5 file to write")
    conv.add_argument("--n-vertices", type=int, default=5000, help="procedural: resolution (default 5000)")
    conv.add_argument("--seed", type=int, default=0, help="procedural: seed (default 0)")
    conv.add_argument(
        "--recenter",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bfm-deep3d: re-centre the mean shape on its centroid as the official Deep3DFace model does "
        "(default); --no-recenter keeps BFM's frame (facezoo's behaviour before)",
    )

    info = sub.add_parser("info", help="print a model's summary (a facezoo .h5, or a source with --format)")
    info.add_argument("file", type=Path, nargs="+", help="a facezoo .h5 file, or source file(s)/folder(s)")
    info.add_argument("--format", choices=sorted(FORMATS), help="read a source model directly (as convert)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

    prev = sub.add_parser("preview", help="render the mean and +-2 sigma of the first id/exp components")
    prev.add_argument("model", help="a facezoo .h5 file, or the word 'procedural'")
    prev.add_argument("-o", "--output", required=True, type=Path, help="the .png to write")
    prev.add_argument("--size", type=int, default=256, help="pixels per panel (default 256)")
    prev.add_argument("--sigma", type=float, default=2.0, help="how many std to show (default 2)")
    prev.add_argument("--points", action="store_true", help="draw vertices as points instead of rendering")


def _procedural(src, n_vertices=5000, seed=0, **_):
    from facezoo.morphable.procedural import procedural_model

    return procedural_model(n_vertices=n_vertices, seed=seed)


def _bfm_deep3d(src, recenter=True, **_):
    from facezoo.morphable.bfm import load_bfm_deep3d

    return load_bfm_deep3d(src, recenter=recenter)


def _bfm_3ddfa(src, **_):
    from facezoo.morphable.bfm import load_bfm_3ddfa

    return load_bfm_3ddfa(src)


def _bfm_3ddfa_mean(src, **_):
    from facezoo.morphable.bfm import load_3ddfa_mean

    return load_3ddfa_mean(src)


def _sfm(src, **_):
    from facezoo.morphable.sfm import load_sfm

    return load_sfm(src)


def _ict(src, **_):
    from facezoo.morphable.ict import load_ict

    return load_ict(src if len(src) > 1 else src[0])


# format name -> loader(src: list[Path], **options) -> MorphableModel (imports stay lazy for a fast --help)
LOADERS = {
    "bfm-deep3d": _bfm_deep3d,
    "bfm-3ddfa": _bfm_3ddfa,
    "bfm-3ddfa-mean": _bfm_3ddfa_mean,
    "sfm": _sfm,
    "ict": _ict,
    "procedural": _procedural,
}


def convert(src: list[Path], fmt: str, n_vertices: int = 5000, seed: int = 0, recenter: bool = True):
    """Load a source model as a :class:`~facezoo.morphable.MorphableModel`."""
    if fmt not in LOADERS:
        raise ValueError(f"--format: unknown {fmt!r}; choose one of {sorted(LOADERS)}")
    if fmt != "procedural" and not src:
        raise ValueError(f"--format {fmt} needs SRC: {FORMATS[fmt]}")
    for p in src:
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder (expected {FORMATS[fmt]})")
    return LOADERS[fmt](src, n_vertices=n_vertices, seed=seed, recenter=recenter)


def format_info(info: dict) -> str:
    """A readable table of :func:`facezoo.morphable.hdf5.read_info`'s dict."""
    rows = [
        ("name", info["name"]),
        ("vertices", info["vertices"]),
        ("triangles", info["triangles"]),
        ("identity components", info["n_id"]),
        ("expression components", info["n_exp"]),
        ("texture components", info["n_tex"] if info["n_tex"] or info.get("has_texture") else "none"),
        ("landmarks", f"{info['landmarks']} ({info['landmarks_valid']} with a model vertex)"),
        ("units", info["units"]),
        ("bases scaled by std", info["bases_scaled"]),
        ("uv", "yes" if info["uv"] else "no"),
        ("masks", ", ".join(info["masks"]) or "none"),
        ("source", info["source"]),
        ("licence", info["licence"]),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _load_for_preview(name: str):
    if name == "procedural":
        from facezoo.morphable.procedural import procedural_model

        return procedural_model(n_vertices=5000, seed=0)
    from facezoo.morphable.hdf5 import load_model

    return load_model(name)


def preview_meshes(model, sigma: float = 2.0):
    """The shapes of a preview: mean, first identity component at -/+sigma, first expression at -/+sigma
    (a model without identity or expression components shows fewer).

    Returns (labels, vertices [5,V,3]).
    """
    import torch

    labels, ids, exps = [], [], []
    zero_id, zero_exp = torch.zeros(model.n_id), torch.zeros(model.n_exp)
    for what, k in (("id", model.n_id), ("exp", model.n_exp)):
        for s in (-sigma, sigma):
            if k == 0:
                continue
            a, b = zero_id.clone(), zero_exp.clone()
            (a if what == "id" else b)[0] = s
            labels.append(f"{what}[0] {s:+g} sd")
            ids.append(a)
            exps.append(b)
    labels.insert(0, "mean")
    ids.insert(0, zero_id)
    exps.insert(0, zero_exp)
    with torch.no_grad():
        verts = model(torch.stack(ids), torch.stack(exps))
    return labels, verts


def _rotation_y(deg: float):
    import math

    import torch

    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def render_preview(model, size: int = 256, sigma: float = 2.0, points: bool = False):
    """A PIL image: columns = preview shapes (:func:`preview_meshes`), rows = front and side (yaw 90°) views,
    orthographic; shaded with a head-on light; the 68 landmarks in red (invalid ones hollow)."""
    import torch
    from PIL import Image, ImageDraw

    labels, verts = preview_meshes(model, sigma)
    n = len(labels)
    albedo = model.texture()[0].clamp(0, 1) if model.has_texture else torch.full((model.n_vertices, 3), 0.75)
    header = 18
    canvas = Image.new("RGB", (n * size, 2 * size + header), "white")
    draw = ImageDraw.Draw(canvas)
    renderer = None
    if not points:
        try:
            from facezoo.render import MeshRenderer

            renderer = MeshRenderer((size, size), backend="builtin", background=1.0)
        except ImportError:  # renderer not installed in this build: points fallback
            renderer = None
    # One scale for every panel so the shapes compare.
    rots = [_rotation_y(0.0), _rotation_y(90.0)]
    extent = max(float((verts @ r.T)[..., :2].abs().amax()) for r in rots)
    scale = 0.45 * size / max(extent, 1e-6)
    for row, rot in enumerate(rots):
        for col in range(n):
            v = verts[col] @ rot.T  # view space (orthographic)
            centre = 0.5 * (v[:, :2].amax(0) + v[:, :2].amin(0))
            tile = _render_tile(model, v, albedo, centre, scale, size, renderer)
            canvas.paste(tile, (col * size, header + row * size))
            lm = model.landmarks(v)
            px = (lm[:, 0] - centre[0]) * scale + size / 2 + col * size
            py = size / 2 - (lm[:, 1] - centre[1]) * scale + header + row * size
            valid = model.landmark_valid
            # Side view: only the landmarks on the near half (the subject's right, +z after the turn).
            show = torch.ones(68, dtype=torch.bool) if row == 0 else lm[:, 2] >= lm[30, 2] - 1.0
            for i in range(68):
                if show[i]:
                    box = (float(px[i]) - 2, float(py[i]) - 2, float(px[i]) + 2, float(py[i]) + 2)
                    draw.ellipse(box, fill=(230, 20, 20) if valid[i] else None, outline=(230, 20, 20))
    for col, label in enumerate(labels):
        draw.text((col * size + 4, 3), label, fill=(0, 0, 0))
    return canvas


def _shade(model, v, albedo):
    import torch

    from facezoo.geometry.mesh import vertex_normals

    nz = vertex_normals(v[None], model.triangles)[0][:, 2].clamp(min=0)
    return albedo * (0.3 + 0.7 * nz)[:, None], torch.as_tensor(nz)


def _render_tile(model, v, albedo, centre, scale, size, renderer):
    import numpy as np
    import torch
    from PIL import Image

    shaded, _ = _shade(model, v, albedo)
    if renderer is not None:
        from facezoo.geometry.cameras import WeakPerspective

        t2d = torch.stack([size / 2 - scale * centre[0], size / 2 + scale * centre[1]])[None]
        cam = WeakPerspective(torch.tensor([scale]), torch.eye(3)[None], t2d)
        with torch.no_grad():
            out = renderer(v[None], model.triangles, cam, colors=shaded[None])
        img = (out.image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)
        return Image.fromarray(img)
    # Points: painter's order (far to near), each vertex a 2x2 dot.
    img = np.full((size, size, 3), 255, np.uint8)
    order = torch.argsort(v[:, 2])
    x = ((v[order, 0] - centre[0]) * scale + size / 2).long().numpy()
    y = (size / 2 - (v[order, 1] - centre[1]) * scale).long().numpy()
    c = (shaded[order].clamp(0, 1).numpy() * 255).astype(np.uint8)
    for dx in (0, 1):
        for dy in (0, 1):
            ok = (x + dx >= 0) & (x + dx < size) & (y + dy >= 0) & (y + dy < size)
            img[y[ok] + dy, x[ok] + dx] = c[ok]
    return Image.fromarray(img)


def execute(args: argparse.Namespace) -> int:
    try:
        if args.action == "convert":
            from facezoo.morphable.hdf5 import read_info, save_model

            model = convert(list(args.src), args.format, args.n_vertices, args.seed, args.recenter)
            path = save_model(model, args.output)
            print(f"wrote {path}")
            print(format_info(read_info(path)))
        elif args.action == "info":
            from facezoo.morphable.hdf5 import read_info

            if args.format:
                info = convert(list(args.file), args.format).info()
            else:
                info = read_info(args.file[0])
            print(json.dumps(info, indent=2) if args.json else format_info(info))
        elif args.action == "preview":
            if args.size < 16:
                raise ValueError(f"--size: expected at least 16 pixels, got {args.size}")
            if not 0 < args.sigma < float("inf"):
                raise ValueError(
                    f"--sigma: expected a finite positive number of standard deviations, got {args.sigma}"
                )
            model = _load_for_preview(args.model)
            image = render_preview(model, size=args.size, sigma=args.sigma, points=args.points)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            image.save(args.output)
            print(f"wrote {args.output} ({image.width}x{image.height})")
    except (FileNotFoundError, ValueError, TypeError) as err:
        print(f"facezoo model {args.action}: error: {err}", file=sys.stderr)
        return 2
    return 0

"""Fit or apply Deep3DFace's skin-colour classifier (naive Bayes with Gaussian mixtures, deep3d.txt §3.2).

  facezoo skin fit --images DIR --masks DIR -o skin.npz [--components 16] [--colour-space rgb]
  facezoo skin apply IMAGE [IMAGE ...] -o OUTDIR [--params skin.npz] [--attention]

``fit`` pairs every image in --images with the mask of the same relative path and stem in --masks (any
image extension; white = skin, i.e. value >= --mask-threshold * 255), samples at most --max-pixels labelled
pixels per class evenly over the images, fits one mixture per class by EM and writes a small .npz.
``apply`` writes ``<stem>_skin.png``: the per-pixel skin probability (or Deep3DFace's attention with
--attention) as 8-bit grey; without --params it uses the documented Chai & Ngan YCbCr rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "fit / apply the skin-colour GMM classifier used by Deep3DFace's skin attention"

LUMA = (0.299, 0.587, 0.114)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    fit = sub.add_parser("fit", help="fit the classifier from images and binary skin masks")
    fit.add_argument("--images", required=True, type=Path, help="folder of RGB images")
    fit.add_argument("--masks", required=True, type=Path, help="folder of masks with the same relative names")
    fit.add_argument("-o", "--output", required=True, type=Path, help="output .npz")
    fit.add_argument("--components", type=int, default=16, help="mixture components per class (default 16)")
    fit.add_argument("--colour-space", choices=("rgb", "ycbcr"), default="rgb")
    fit.add_argument(
        "--max-pixels", type=int, default=200_000, help="pixels sampled per class (default 200000)"
    )
    fit.add_argument("--mask-threshold", type=float, default=0.5, help="mask value (0-1) above which = skin")
    fit.add_argument("--prior", type=float, default=None, help="P(skin); default: labelled proportion")
    fit.add_argument("--max-iter", type=int, default=200)
    fit.add_argument("--seed", type=int, default=0)
    apply = sub.add_parser("apply", help="write skin-probability maps for images")
    apply.add_argument("images", nargs="+", type=Path)
    apply.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    apply.add_argument(
        "--params", type=Path, default=None, help=".npz from `facezoo skin fit` (default: rule)"
    )
    apply.add_argument("--attention", action="store_true", help="write A = 1 where P > 0.5 else P")


def _pairs(images: Path, masks: Path) -> list[tuple[Path, Path]]:
    if not images.is_dir():
        raise FileNotFoundError(f"--images {images}: no such folder")
    if not masks.is_dir():
        raise FileNotFoundError(f"--masks {masks}: no such folder")
    mask_index = {
        p.relative_to(masks).with_suffix(""): p for p in masks.rglob("*") if p.suffix.lower() in IMAGE_EXTS
    }
    pairs, unmatched = [], []
    for img in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_EXTS):
        key = img.relative_to(images).with_suffix("")
        if key in mask_index:
            pairs.append((img, mask_index[key]))
        else:
            unmatched.append(str(key))
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} image(s) have no mask in {masks} (same relative "
            f"name, any image extension): {', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}"
        )
    if not pairs:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTS)}) found in {images}")
    return pairs


def _fit(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from facezoo.data.io import load_image_uint8
    from facezoo.losses.skin import fit_skin_classifier

    pairs = _pairs(args.images, args.masks)
    per_image = max(1, -(-args.max_pixels // len(pairs)))
    rng = np.random.default_rng(args.seed)
    skin, other = [], []
    for img_path, mask_path in tqdm(pairs, desc="reading pixels", unit="img", file=sys.stderr):
        img = load_image_uint8(img_path).astype(np.float32) / 255.0
        # PIL's "L" (ITU-R 601-2 luma), read through load_image_uint8 for errors that name the file
        mask = load_image_uint8(mask_path).astype(np.float32) @ LUMA / 255.0
        if mask.shape != img.shape[:2]:
            raise ValueError(f"mask {mask_path} is {mask.shape}, image {img_path} is {img.shape[:2]}")
        is_skin = mask.reshape(-1) >= args.mask_threshold
        pix = img.reshape(-1, 3)
        for sel, bucket in ((is_skin, skin), (~is_skin, other)):
            chosen = pix[sel]
            if len(chosen) > per_image:
                chosen = chosen[rng.choice(len(chosen), per_image, replace=False)]
            bucket.append(chosen)
    pixels_skin = torch.from_numpy(np.concatenate(skin))
    pixels_other = torch.from_numpy(np.concatenate(other))
    print(
        f"fitting {args.components}-component mixtures on {len(pixels_skin)} skin / {len(pixels_other)} "
        f"non-skin pixels ({args.colour_space})",
        file=sys.stderr,
    )
    clf = fit_skin_classifier(
        pixels_skin, pixels_other, args.components, colour_space=args.colour_space, prior=args.prior,
        max_iter=args.max_iter, seed=args.seed,
    )  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    clf.save(args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _apply(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image
    from tqdm import tqdm

    from facezoo.data.io import load_image_uint8
    from facezoo.losses.skin import SkinClassifier, skin_attention

    clf = SkinClassifier.load(args.params)
    if clf.is_fallback:
        print("facezoo skin apply: no --params given, using the Chai & Ngan YCbCr rule", file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)
    for path in tqdm(args.images, desc="skin", unit="img", file=sys.stderr):
        img = torch.from_numpy(load_image_uint8(path).astype(np.float32) / 255.0)
        with torch.no_grad():
            prob = clf(img.permute(2, 0, 1)[None])
        if args.attention:
            prob = skin_attention(prob)
        out = (prob[0, 0].clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
        Image.fromarray(out).save(args.output / f"{path.stem}_skin.png")
    return 0


def execute(args: argparse.Namespace) -> int:
    return _fit(args) if args.action == "fit" else _apply(args)

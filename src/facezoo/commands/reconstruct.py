"""Reconstruct faces in real photos: landmarks, alignment, the method's network and/or fitting, exports.

    facezoo reconstruct PHOTO|DIR... --model CKPT|MODEL.h5|procedural --method regress|fit|regress+fit \
        --out DIR

Landmarks come from a file beside each photo (NAME.pts, NAME.txt with 68 or 5 points, NAME.mat; also under
detections/ or landmarks/), else from --detector dlib (pip install 'facezoo[landmarks]'; dlib's 68-point
predictor, non-commercial licence). --method regress runs the checkpoint's network on aligned crops; fit
fits the morphable model (any: procedural, BFM, SFM, ICT .h5) to the landmarks, and with --photometric to
the pixels too (models with an albedo); regress+fit refines the network's output by the same fitting.
Writes per photo <stem>.obj, <stem>_overlay.png, <stem>.json (landmarks2d in photo pixels, params, model,
method, checkpoint), <stem>.npz, and contact_sheet.png of all overlays.
"""

from __future__ import annotations

import argparse
import time

HELP = "reconstruct faces in photos (regress / fit / regress+fit) and export meshes, overlays, parameters"


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", help="photos or folders of photos")
    parser.add_argument(
        "--model", required=True, help="a checkpoint (.ckpt), a morphable model (.h5) or procedural"
    )
    parser.add_argument("--method", default="fit", choices=("regress", "fit", "regress+fit"))
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--photometric", action="store_true", help="also fit albedo, SH light and shape to the pixels"
    )
    parser.add_argument(
        "--camera", default="weak", choices=("weak", "perspective"), help="camera for --method fit"
    )
    parser.add_argument(
        "--contour", default="auto", choices=("auto", "moving", "fixed"), help="jaw landmarks"
    )
    parser.add_argument("--iterations", type=int, default=15, help="landmark-fit iterations (default 15)")
    parser.add_argument(
        "--photometric-steps", type=int, default=60, help="photometric Adam steps (default 60)"
    )
    parser.add_argument(
        "--detector", default="none", choices=("none", "dlib"),
        help="landmarks for photos without a landmark file (dlib: extra 'landmarks')",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None, help="photos fitted together (default all)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def execute(args: argparse.Namespace) -> int:
    import torch

    from facezoo.photos import (
        DlibLandmarkDetector,
        contact_sheet,
        find_photos,
        load_photos,
        reconstruct_photos,
        resolve_model,
        write_exports,
    )

    if args.iterations < 1:
        raise ValueError(f"--iterations: expected a positive number, got {args.iterations}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size: expected a positive number, got {args.batch_size}")
    start = time.time()
    paths = find_photos(args.photos)
    detector = None
    if args.detector == "dlib":
        try:
            detector = DlibLandmarkDetector()
        except ImportError as err:
            raise ValueError(str(err)) from err
    photos = load_photos(paths, detector)
    model = resolve_model(args.model)
    print(f"facezoo reconstruct: {len(photos)} photo(s), model {model.name}, method {args.method}"
          + (" + photometric" if args.photometric else ""))  # fmt: skip
    with torch.no_grad() if args.method == "regress" else torch.enable_grad():
        results = reconstruct_photos(
            photos, model, args.method, photometric=args.photometric, camera=args.camera,
            contour=args.contour,
            iterations=args.iterations, photometric_steps=args.photometric_steps, batch_size=args.batch_size,
            device=args.device,
        )  # fmt: skip
    fitted = time.time() - start
    overlays = []
    for r in results:
        files = write_exports(r, args.out, model.name, args.method, model.checkpoint)
        overlays.append(files["overlay_tensor"])
        print(f"  {r.photo.path.name}: landmark NME {100 * r.nme:.2f}% ({r.photo.landmarks.shape[0]} points, "
              f"{r.photo.source})")  # fmt: skip
    sheet = contact_sheet(overlays, f"{args.out}/contact_sheet.png")
    print(f"  reconstructed in {fitted:.1f} s, exported in {time.time() - start - fitted:.1f} s: {args.out}/ "
          f"(contact sheet {sheet})")  # fmt: skip
    return 0

"""``facezoo prepare <dataset> --root ... --out ...``: align and pack a dataset into HDF5 shards.

Each split is written to ``<out>/<split>/`` (``manifest.json`` + ``<split>-NNNNN.h5``) with the deterministic
evaluation-style crops (no random shift); point a datamodule's ``shards`` argument at ``<out>``. ``facezoo
prepare micc --root MICC --out FRAMES`` instead extracts the videos' frames (needs PyAV: ``pip install av``;
or extract them yourself with ``ffmpeg -i video.mov frame%04d.jpg``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "align and pack a dataset into HDF5 shards (or extract MICC video frames)"
DATASETS = ("w300lp", "aflw2000", "image_folder", "vggface2", "multipie", "micc")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--root", required=True, help="dataset root in its distributed layout")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--splits", nargs="+", default=None, help="splits to write (default: the dataset's)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--mode", default=None, help="single|triplet (w300lp, multipie)")
    parser.add_argument("--on-bad-sample", choices=("error", "skip"), default="error")
    parser.add_argument("--every", type=int, default=1, help="micc: keep every n-th video frame")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")


def _datasets(args) -> dict:
    import facezoo.datamodules as D

    common = dict(image_size=args.image_size, on_bad_sample=args.on_bad_sample)
    if args.dataset == "w300lp":
        return {
            s: (lambda s=s: D.W300LPDataset(args.root, mode=args.mode or "single", split=s, **common))
            for s in args.splits or ["train"]
        }
    if args.dataset == "aflw2000":
        return {"test": lambda: D.AFLW2000Dataset(args.root, **common)}
    if args.dataset == "image_folder":
        return {s: (lambda: D.ImageFolderDataset(args.root, **common)) for s in args.splits or ["train"]}
    if args.dataset == "vggface2":
        return {
            s: (lambda s=s: D.VGGFace2Dataset(args.root, s, **common))
            for s in args.splits or ["train", "test"]
        }
    if args.dataset == "multipie":
        return {
            s: (lambda s=s: D.MultiPIEDataset(args.root, mode=args.mode or "triplet", split=s, **common))
            for s in args.splits or ["train", "test"]
        }
    raise ValueError(args.dataset)


def extract_micc_frames(root: Path, out: Path, every: int = 1) -> int:
    """Decode ``subject_NN/Video/<type>/*`` videos into ``out/subject_NN/<type>/frameNNNNN.jpg`` (PyAV)."""
    try:
        import av
    except ImportError as err:
        raise SystemExit(
            "facezoo prepare micc needs a video decoder: `pip install av` (PyAV), or extract the frames "
            "yourself (ffmpeg -i video frame%04d.jpg) into <frames>/subject_NN/<video type>/"
        ) from err
    from tqdm import tqdm

    videos = sorted(p for p in root.glob("subject_*/Video/*/*") if p.is_file())
    if not videos:
        raise SystemExit(f"no videos under {root}/subject_NN/Video/<type>/")
    count = 0
    for video in tqdm(videos, desc="micc videos"):
        target = out / video.parts[-4] / video.parent.name
        target.mkdir(parents=True, exist_ok=True)
        with av.open(str(video)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every == 0:
                    frame.to_image().save(target / f"frame{i:05d}.jpg", quality=95)
                    count += 1
    return count


def summary(name: str, written: int, skipped: list[str], out: Path) -> str:
    """The line ``facezoo prepare`` prints per split: ``"<name>: N samples, K skipped: <file>: <reason>"``
    (one reason per line after the first when several were skipped).

    Example:
        >>> print(summary("aflw2000/test", 2, ["a.jpg: truncated"], Path("s/test")))
        aflw2000/test: 2 samples, 1 skipped: a.jpg: truncated -> s/test
    """
    if not skipped:
        return f"{name}: {written} samples -> {out}"
    first, rest = skipped[0], "".join(f"\n  {r}" for r in skipped[1:])
    return f"{name}: {written} samples, {len(skipped)} skipped: {first} -> {out}{rest}"


def write_split(dataset, writer, desc: str) -> tuple[int, list[str]]:
    """Write every good sample of ``dataset`` with ``writer``; a bad sample (a skip marker, with
    ``on_bad_sample="skip"``) is left out, never replaced. Returns (samples written, skip reasons)."""
    from tqdm import tqdm

    from facezoo.data.io import SKIPPED, is_skip_marker

    written, skipped = 0, []
    for i in tqdm(range(len(dataset)), desc=desc, unit="sample", mininterval=10.0):
        sample = dataset[i]
        if is_skip_marker(sample):
            skipped.extend(sample[SKIPPED])
            continue
        writer.add({k: v for k, v in sample.items() if k != SKIPPED})
        written += 1
    return written, skipped


def execute(args: argparse.Namespace) -> int:
    from facezoo.data.io import check_root
    from facezoo.data.shards import ShardWriter

    _positive("--image-size", args.image_size)
    _positive("--samples-per-shard", args.samples_per_shard)
    _positive("--every", args.every)
    out = Path(args.out)
    root = check_root(args.root, f"--root ({args.dataset})")
    if args.dataset == "micc":
        n = extract_micc_frames(root, out, args.every)
        print(f"wrote {n} frames under {out}")
        return 0
    for split, make in _datasets(args).items():
        dataset = make()
        name = f"{args.dataset}/{split}"
        with ShardWriter(out / split, args.dataset, split, args.samples_per_shard) as writer:
            written, skipped = write_split(dataset, writer, name)
            if not written:
                raise ValueError(f"{name}: every sample is bad, nothing to write; first: {skipped[0]}")
        print(summary(name, written, skipped, out / split))
    return 0

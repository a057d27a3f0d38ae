"""The zoo: packaged configs and the checkpoint index (any folder, an installed wheel included).

Examples::

    facezoo zoo configs                  # the packaged configs with their one-line descriptions
    facezoo zoo show deep3d > my.yaml    # print one (zoo/deep3d.yaml, deep3d.yaml or deep3d) to copy and edit
    facezoo zoo list                     # the checkpoint index: names, metrics, whether cached/built
    facezoo zoo build deep3d.synthetic-demo          # retrain an entry on CPU, check its metrics
    facezoo zoo download NAME | URL [--sha256 HEX]   # into $FACEZOO_HOME (else ~/.cache/facezoo)
    facezoo zoo verify                   # sha256 of every cached / built checkpoint
    facezoo zoo publish runs/x/last.ckpt --name deep3d.mine -o dist/   # hash-named copy + entry to paste
    facezoo zoo import deep3d-official epoch_20.pth -o deep3d-official.ckpt

``--config zoo/X.yaml`` reads ``./zoo/X.yaml`` when it exists, else the packaged copy (facezoo.hub.configs).
In Python: ``facezoo.load_pretrained(NAME | PATH | URL)`` (facezoo.hub.pretrained).
"""

from __future__ import annotations

import argparse
import sys

HELP = "the zoo: packaged configs and checkpoints (configs, show, list, download, verify, build, publish...)"
IMPORTERS = ("deep3d-official",)


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="action", required=True, metavar="{configs,show,list,download,verify,build,publish,import}"
    )
    sub.add_parser("configs", help="list the packaged configs with their one-line descriptions")
    show = sub.add_parser("show", help="print a packaged config (to copy and edit)")
    show.add_argument("name", help="zoo/deep3d.yaml, deep3d.yaml, deep3d or data/synthetic")
    show.add_argument("--path", action="store_true", help="print where the file is instead of its text")

    lst = sub.add_parser("list", help="the checkpoint index")
    lst.add_argument("--index", help="another index file (default: the packaged zoo/index.yaml)")
    lst.add_argument("--json", action="store_true", help="print JSON")

    down = sub.add_parser("download", help="fetch a checkpoint (an index name or a URL) into the cache")
    down.add_argument("what", help="an index name or an http(s)/file: URL")
    down.add_argument("--sha256", help="expected sha256 (hex); an index entry brings its own")
    down.add_argument("--index", help="another index file")

    ver = sub.add_parser("verify", help="check the sha256 of cached/built checkpoints (or of given files)")
    ver.add_argument(
        "files", nargs="*", help="checkpoint files (checked against their card); default: the index"
    )
    ver.add_argument("--index", help="another index file")

    bld = sub.add_parser("build", help="retrain an index entry from its configs and check its metrics")
    bld.add_argument("name", help="an index name (facezoo zoo list)")
    bld.add_argument("--output", help="run folder (default runs/zoo/<name>)")
    bld.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    bld.add_argument("--index", help="another index file")

    pub = sub.add_parser("publish", help="a hash-named inference copy of a checkpoint + its index entry")
    pub.add_argument("checkpoint", help="a Lightning checkpoint (.ckpt)")
    pub.add_argument("--name", required=True, help="index name, <method>.<tag> (e.g. deep3d.300wlp)")
    pub.add_argument("-o", "--output", default=".", help="folder for the copy (default: here)")
    pub.add_argument("--base-url", help="where the file will be served from (the entry's url)")

    imp = sub.add_parser("import", help="convert officially released weights into a facezoo checkpoint")
    imp.add_argument(
        "kind", choices=IMPORTERS, help="deep3d-official: Deep3DFaceRecon_pytorch's epoch_20.pth"
    )
    imp.add_argument("file", help="the released file")
    imp.add_argument("-o", "--output", required=True, help="the facezoo checkpoint to write (.ckpt)")
    imp.add_argument(
        "--morphable-model",
        default="models/bfm09_deep3d.h5",
        help="the model the checkpoint names (default models/bfm09_deep3d.h5: "
        "`facezoo model convert BFM/ --format bfm-deep3d -o models/bfm09_deep3d.h5`)",
    )


def _configs() -> int:
    from facezoo.hub.configs import description, packaged_configs, zoo_root

    rows = [(name, description(path.read_text(encoding="utf-8"))) for name, path in packaged_configs()]
    width = max(len(name) for name, _ in rows)
    print(f"packaged configs ({zoo_root()}); --config zoo/X.yaml reads ./zoo/X.yaml first, else these:")
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from facezoo.hub.configs import find_packaged

    path = find_packaged(args.name)
    if path is None:
        raise FileNotFoundError(f"no packaged config {args.name!r}; `facezoo zoo configs` lists them")
    print(path if args.path else path.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0


def _local_file(entry):
    """The entry's file in the cache (downloaded or built), or None."""
    from facezoo.hub.download import cache_dir, filename_from_url
    from facezoo.hub.index import built_path

    if entry.url is None:
        path = built_path(entry.name)
    else:
        url = entry.resolved_url()
        name = filename_from_url(url) if "://" in url or url.startswith("file:") else url.rpartition("/")[2]
        path = cache_dir() / "checkpoints" / name
    return path if path.is_file() else None


def _list(args: argparse.Namespace) -> int:
    import json

    from facezoo.hub.index import load_index

    entries = load_index(args.index)
    rows = []
    for e in entries:
        local = _local_file(e)
        state = (
            "cached" if local and e.url else "built" if local else "not built" if e.url is None else "remote"
        )
        rows.append((e, state, local))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "method": e.method,
                        "synthetic": e.synthetic,
                        "url": e.url,
                        "sha256": e.sha256,
                        "metrics": e.metrics,
                        "state": s,
                        "file": str(p) if p else None,
                    }
                    for e, s, p in rows
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'name':<26} {'method':<12} {'data':<10} {'state':<10} metrics")
    for e, state, _ in rows:
        metrics = ", ".join(f"{k} {v['value']:g}" for k, v in e.metrics.items())
        print(
            f"{e.name:<26} {e.method:<12} {'synthetic' if e.synthetic else 'real':<10} {state:<10} {metrics}"
        )
    for e, state, _ in rows:
        if state == "not built":
            print(
                f"\n{e.name}: `facezoo zoo build {e.name}` trains it on this machine; then "
                f"facezoo.load_pretrained({e.name!r})."
            )
    return 0


def _download(args: argparse.Namespace) -> int:
    from facezoo.hub.pretrained import resolve_checkpoint

    print(resolve_checkpoint(args.what, args.sha256, index=args.index))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facezoo.hub.card import read_card
    from facezoo.hub.download import verify_file
    from facezoo.hub.index import load_index

    targets = []
    if args.files:
        for name in args.files:
            card = read_card(name) if Path(name).is_file() else None
            targets.append((name, Path(name), (card or {}).get("sha256")))
    else:
        for e in load_index(args.index):
            path = _local_file(e)
            expected = e.sha256 if e.url else ((read_card(path) or {}).get("sha256") if path else None)
            targets.append((e.name, path, expected))
    bad = 0
    for label, path, expected in targets:
        if path is None or not path.is_file():
            print(f"  {label}: not here" + ("" if args.files else " (download or build it first)"))
            bad += bool(args.files)
            continue
        try:
            actual = verify_file(path, expected, what=str(path))
        except ValueError as err:
            print(f"  {label}: MISMATCH  {err}")
            bad += 1
            continue
        how = "ok" if expected else "no recorded sha256"
        print(f"  {label}: {how}  sha256 {actual}  {path}")
    return 1 if bad else 0


def _build(args: argparse.Namespace) -> int:
    from facezoo.hub.build import build_entry
    from facezoo.hub.index import find_entry

    entry = find_entry(args.name, args.index)
    if entry is None:
        raise FileNotFoundError(f"zoo build: no index entry {args.name!r} (`facezoo zoo list` shows them)")
    output = args.output or f"runs/zoo/{entry.name}"
    path, checks = build_entry(entry, output, args.set)
    print(f"\nzoo build {entry.name}: {path}")
    print(f"  {'metric':<18} {'index':>10} {'tolerance':>10} {'built':>10}  check")
    for c in checks:
        got = "missing" if c.measured is None else f"{c.measured:10.4g}"
        print(
            f"  {c.name:<18} {c.expected:10.4g} {c.tolerance:10.4g} {got:>10}  "
            + ("ok" if c.ok else "OUT OF TOLERANCE")
        )
    if args.set:
        print("  (built with --set overrides: the index's metrics describe the recipe without them)")
    if all(c.ok for c in checks):
        print(f"  reproduced: facezoo.load_pretrained({entry.name!r}) loads it")
        return 0
    print("  NOT reproduced: the checkpoint is kept (and its card records the check)", file=sys.stderr)
    return 1


def _publish(args: argparse.Namespace) -> int:
    from facezoo.hub.build import publish

    path, entry = publish(args.checkpoint, args.name, args.output, args.base_url)
    print(
        f"wrote {path} (and its .card.json); serve it and paste this entry into zoo/index.yaml "
        "(fill in the FILL IN fields):\n"
    )
    print(entry, end="")
    return 0


def _import(args: argparse.Namespace) -> int:
    from facezoo.hub.importers import import_deep3d_official

    path = import_deep3d_official(args.file, args.output, morphable_model=args.morphable_model)
    print(f"wrote {path}: facezoo.load_pretrained({str(path)!r}) or --ckpt_path {path} with zoo/deep3d.yaml")
    return 0


def execute(args: argparse.Namespace) -> int:
    actions = {
        "configs": lambda a: _configs(),
        "show": _show,
        "list": _list,
        "download": _download,
        "verify": _verify,
        "build": _build,
        "publish": _publish,
        "import": _import,
    }
    return actions[args.action](args)

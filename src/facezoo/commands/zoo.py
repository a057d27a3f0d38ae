"""The zoo: the packaged configs (any folder, an installed wheel included).

Examples::

    facezoo zoo configs                  # the packaged configs with their one-line descriptions
    facezoo zoo show deep3d > my.yaml    # print one (zoo/deep3d.yaml, deep3d.yaml or deep3d) to copy and edit
    facezoo fit --config zoo/deep3d.yaml --config zoo/data/synthetic.yaml   # from any folder

``--config zoo/X.yaml`` reads ``./zoo/X.yaml`` when it exists, else the packaged copy (facezoo.hub.configs).
"""

from __future__ import annotations

import argparse

HELP = "the zoo: packaged configs (configs, show)"


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{configs,show}")
    sub.add_parser("configs", help="list the packaged configs with their one-line descriptions")
    show = sub.add_parser("show", help="print a packaged config (to copy and edit)")
    show.add_argument("name", help="zoo/deep3d.yaml, deep3d.yaml, deep3d or data/synthetic")
    show.add_argument("--path", action="store_true", help="print where the file is instead of its text")


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


def execute(args: argparse.Namespace) -> int:
    if args.action == "configs":
        return _configs()
    return _show(args)

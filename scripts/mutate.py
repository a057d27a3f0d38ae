#!/usr/bin/env python
"""Mutation check: apply small deliberate bugs one at a time and report which tests catch each.

Each mutation replaces one or more exact source snippets (a small, unique line) in one file, runs pytest on
the test paths that should notice, and restores the file. The table printed at the end has one row per
mutation: caught (some test failed), NOT CAUGHT (the tests passed with the bug in), or "snippet not found"
(the code moved: refresh the snippet). Files are edited in place and always restored (``try/finally``);
each file's ``git diff`` is compared before and after, and the script stops if a restore ever failed.
Tests marked ``slow`` are left out.

    python scripts/mutate.py                 # all mutations (make mutate)
    python scripts/mutate.py -k nme rmse     # only those whose name contains one of the words
    python scripts/mutate.py --fast          # stop each run at its first failure (-x): fastest, fewer names

Exit status: 0 when every mutation whose snippet was found is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    edits: tuple[tuple[str, str], ...]  # (original snippet, mutated snippet), applied in order
    tests: tuple[str, ...]  # test paths (files, folders or node ids) run against the mutant


MUTATIONS: tuple[Mutation, ...] = (
    # -- issue 21's table: passed the suite unnoticed before the tests were strengthened
    Mutation(
        "photometric denominator clamp_min(1.0) -> 1e-8",
        "src/facezoo/losses/photometric.py",
        (("weight.sum().clamp_min(1.0)", "weight.sum().clamp_min(1e-8)"),),
        ("tests/losses",),
    ),
    Mutation(
        "nme3d box from the unmasked target",
        "src/facezoo/metrics/nme3d.py",
        (
            (
                "    target = target.to(device=preds.device, dtype=preds.dtype)\n",
                "    target = target.to(device=preds.device, dtype=preds.dtype)\n    unmasked = target\n",
            ),
            ("return err / box_diagonal(target)", "return err / box_diagonal(unmasked)"),
        ),
        ("tests/metrics/test_nme3d.py",),
    ),
    Mutation(
        "vertex_error mean -> root-mean-square",
        "src/facezoo/methods/base.py",
        (("(aligned - t).norm(dim=-1).mean(-1)", "(aligned - t).norm(dim=-1).pow(2).mean(-1).sqrt()"),),
        ("tests/methods/test_base.py", "tests/methods/test_reconstruction.py"),
    ),
    Mutation(
        "MeshRenderer depth output negated",
        "src/facezoo/render/renderer.py",
        (("depth=depth[:, None],", "depth=-depth[:, None],"),),
        ("tests/render",),
    ),
    Mutation(
        "ColorJitter does nothing",
        "src/facezoo/data/augment.py",
        (('out["image"] = self.op(flat).clamp_(0, 1)', 'out["image"] = flat.clone().clamp_(0, 1)'),),
        ("tests/data/test_sample_io.py",),
    ),
    Mutation(
        "MICC RMSE -> mean absolute distance",
        "src/facezoo/metrics/mesh_rmse.py",
        (("rmse = float(np.sqrt(np.mean(d**2)))", "rmse = float(np.mean(np.abs(d)))"),),
        ("tests/metrics/test_mesh_rmse.py",),
    ),
    Mutation(
        "antialias pairs (PyTorch): every edge a silhouette",
        "src/facezoo/render/antialias.py",
        (("& ((nb < 0) | ~front[b, nbc]", "& ((nb > -2) | ~front[b, nbc]"),),
        ("tests/render",),
    ),
    # -- caught already before issue 21 (kept as regression checks)
    Mutation(
        "NME normaliser sqrt(w h) -> max(w, h)",
        "src/facezoo/metrics/landmark_nme.py",
        (("return (wh[:, 0] * wh[:, 1]).sqrt()", "return wh.amax(dim=-1)"),),
        ("tests/metrics/test_landmark_nme.py", "tests/datamodules/test_aflw_protocol.py"),
    ),
    Mutation(
        "NME per-image mean -> median",
        "src/facezoo/metrics/landmark_nme.py",
        (("target[..., :2], dim=-1).mean(dim=1)", "target[..., :2], dim=-1).median(dim=1).values"),),
        ("tests/metrics/test_landmark_nme.py", "tests/datamodules/test_aflw_protocol.py"),
    ),
    Mutation(
        "rasterizer pixel centre +0.5 dropped",
        "src/facezoo/render/backends/builtin.py",
        (
            (
                "return 1.0 - (2 * rows + 1) / height, (2 * cols + 1) / width - 1.0",
                "return 1.0 - (2 * rows) / height, (2 * cols) / width - 1.0",
            ),
        ),
        ("tests/render",),
    ),
    Mutation(
        "rasterizer u/v swapped",
        "src/facezoo/render/backends/builtin.py",
        (
            (
                "out = torch.stack([e[..., 0] / s, e[..., 1] / s, zw, (t + 1).double()], -1)",
                "out = torch.stack([e[..., 1] / s, e[..., 0] / s, zw, (t + 1).double()], -1)",
            ),
        ),
        ("tests/render",),
    ),
    Mutation(
        "photometric denominator: all pixels instead of the masked ones",
        "src/facezoo/losses/photometric.py",
        (("/ weight.sum().clamp_min(1.0)", "/ weight.numel()"),),
        ("tests/losses",),
    ),
    Mutation(
        "300W-LP camera: height + 1 - y -> height - y",
        "src/facezoo/geometry/pose_300wlp.py",
        (("float(image_height) + y_offset - p[:, 4]", "float(image_height) - p[:, 4]"),),
        ("tests/geometry", "tests/data/test_align.py"),
    ),
    Mutation(
        "300W-LP yaw sign flipped (rotation_300wlp)",
        "src/facezoo/data/align.py",
        (
            (
                'return euler_to_matrix(angles, "3ddfa")',
                'return euler_to_matrix(angles * angles.new_tensor([1.0, -1.0, 1.0]), "3ddfa")',
            ),
        ),
        ("tests/data", "tests/geometry", "tests/datamodules"),
    ),
    Mutation(
        "ICP: aligned prediction scaled by s instead of 1/s",
        "src/facezoo/metrics/_scan.py",
        (("aligned = (pred - t) @ R / s", "aligned = (pred - t) @ R * s"),),
        ("tests/metrics",),
    ),
)

_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def _git_diff(path: str) -> str:
    out = subprocess.run(["git", "diff", "--", path], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout


def _run_pytest(tests: tuple[str, ...], fast: bool, timeout: float) -> tuple[int, list[str], str]:
    """Runs pytest on ``tests``; returns (exit code, failing test ids, output tail)."""
    with tempfile.TemporaryDirectory(prefix="facezoo-mutate-") as pyc:
        env = dict(os.environ, PYTHONPYCACHEPREFIX=pyc)  # fresh bytecode: never a stale .pyc of the mutant
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", "-m", "not slow"]
        cmd += ["-x"] if fast else []
        try:
            proc = subprocess.run(
                cmd + list(tests), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return -1, [], "timeout"
    out = proc.stdout + proc.stderr
    failed = list(dict.fromkeys(_FAILED.findall(out)))
    return proc.returncode, failed, out[-2000:]


def run_one(m: Mutation, fast: bool, timeout: float) -> dict:
    path = ROOT / m.file
    if not path.is_file():
        return {"name": m.name, "status": "snippet not found", "by": f"{m.file} does not exist"}
    original = path.read_bytes()
    text = original.decode()
    mutated = text
    for old, new in m.edits:
        if mutated.count(old) != 1:
            where = "not found" if old not in mutated else f"found {mutated.count(old)} times"
            return {"name": m.name, "status": "snippet not found", "by": f"{m.file}: {old[:60]!r} {where}"}
        mutated = mutated.replace(old, new)
    before = _git_diff(m.file)
    start = time.time()
    try:
        path.write_text(mutated)
        code, failed, tail = _run_pytest(m.tests, fast, timeout)
    finally:
        path.write_bytes(original)
    if _git_diff(m.file) != before or path.read_bytes() != original:
        raise SystemExit(f"mutate: could not restore {m.file}; check `git diff {m.file}`")
    seconds = time.time() - start
    if code == 0:
        status, by = "NOT CAUGHT", f"({' '.join(m.tests)} pass)"
    elif code == 1:
        status = "yes"
        by = ", ".join(failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3 else "")
    elif code == -1:
        status, by = "timeout", f"after {timeout:.0f} s"
    else:
        status = "yes (error)"
        by = f"pytest exit {code}: " + (", ".join(failed[:2]) or tail.strip().splitlines()[-1][:80])
    return {"name": m.name, "status": status, "by": by, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", nargs="*", default=None, help="only mutations whose name contains one of these")
    parser.add_argument("--fast", action="store_true", help="stop each pytest run at the first failure")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per pytest run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.k or any(w.lower() in m.name.lower() for w in args.k)]
    if args.list:
        for m in chosen:
            print(f"{m.name:55s} {m.file}  ->  {' '.join(m.tests)}")
        return 0
    rows, start = [], time.time()
    for i, m in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {m.name} ...", flush=True)
        row = run_one(m, args.fast, args.timeout)
        print(f"    {row['status']}: {row['by']}", flush=True)
        rows.append(row)
    width = max(len(r["name"]) for r in rows)
    print(f"\n| {'mutation':{width}} | caught | seconds | by which tests |")
    print(f"|{'-' * (width + 2)}|--------|---------|----------------|")
    for r in rows:
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else "-"
        print(f"| {r['name']:{width}} | {r['status']} | {seconds} | {r['by']} |")
    missed = [r for r in rows if r["status"] in ("NOT CAUGHT", "timeout")]
    print(
        f"\n{len(rows) - len(missed)}/{len(rows)} caught or snippet not found; {len(missed)} missed; "
        f"{time.time() - start:.0f} s"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

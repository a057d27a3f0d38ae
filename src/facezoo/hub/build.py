"""``facezoo zoo build`` (retrain an index entry from its configs and check its metrics) and ``publish``
(a hash-named inference copy of a checkpoint + the index entry to paste).

Build check: every metric of the entry must land within ``value +- tolerance`` (absolute, stated per metric
in ``zoo/index.yaml``). CPU training is not bit-identical across machines (thread counts, instruction sets),
so the tolerance, not the sha256, is what a rebuild reproduces; the sha256 of the built file goes into its
card, where ``facezoo zoo verify`` and ``load_pretrained`` check it later.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from facezoo.hub.index import IndexEntry, built_path

__all__ = ["MetricCheck", "build_entry", "check_metrics", "publish"]


@dataclass(frozen=True)
class MetricCheck:
    """One metric of a build against the index."""

    name: str
    expected: float
    tolerance: float
    measured: float | None

    @property
    def ok(self) -> bool:
        return self.measured is not None and abs(self.measured - self.expected) <= self.tolerance


def check_metrics(entry: IndexEntry, measured: dict[str, float]) -> list[MetricCheck]:
    """The entry's metrics against ``measured`` (a metric the build did not report fails).

    Example:
        >>> from types import SimpleNamespace
        >>> e = SimpleNamespace(metrics={"nme": {"value": 0.011, "tolerance": 0.004}})
        >>> [c.ok for c in check_metrics(e, {"nme": 0.013})], [c.ok for c in check_metrics(e, {"nme": 0.02})]
        ([True], [False])
    """
    return [
        MetricCheck(name, float(spec["value"]), float(spec.get("tolerance", 0.0)), measured.get(name))
        for name, spec in entry.metrics.items()
    ]


def build_entry(
    entry: IndexEntry, output: str | os.PathLike[str], overrides: list[str] = ()
) -> tuple[Path, list[MetricCheck]]:
    """Retrain ``entry`` from its configs (``overrides``: LightningCLI ``KEY=VALUE``), write the inference
    checkpoint to :func:`~facezoo.hub.index.built_path` (atomically, with its card) and compare the metrics.

    Returns:
        The checkpoint path and the metric checks (the caller decides what a failed check means).
    """
    from facezoo.commands import demo
    from facezoo.hub.card import make_card, write_card
    from facezoo.hub.checkpoint import save_atomic, slim
    from facezoo.nn.weights import load_torch_file

    if entry.build is None or entry.build.get("command") != "demo":
        raise ValueError(f"zoo build: {entry.name} has no build recipe this version knows (build.command)")
    out = Path(output)
    args = argparse.Namespace(output=str(out), config=list(entry.config), set=list(overrides), num_images=8)
    status = demo.execute(args)
    if status:
        raise RuntimeError(f"zoo build: {entry.name}: the training run failed (status {status})")
    run = json.loads((out / "metrics.json").read_text())
    measured = {k: float(v) for k, v in run["after"].items()}
    ckpt = slim(load_torch_file(out / "deep3d_demo.ckpt", "zoo build"))
    ckpt["facezoo"] = {"index_name": entry.name, "config": list(entry.config), "overrides": list(overrides)}
    dest = save_atomic(ckpt, built_path(entry.name))
    checks = check_metrics(entry, measured)
    card = make_card(
        dest,
        method=f"facezoo.methods.{entry.method}",
        hyper_parameters=ckpt.get("hyper_parameters"),
        config=list(entry.config),
        metrics=measured,
        global_step=ckpt.get("global_step"),
        extra={
            "index_name": entry.name,
            "overrides": list(overrides),
            "synthetic": entry.synthetic,
            "trained_on": entry.trained_on,
            "licence": entry.licence,
            "index_check": {
                c.name: {"expected": c.expected, "tolerance": c.tolerance, "measured": c.measured, "ok": c.ok}
                for c in checks
            },
            "run": str(out),
            "fit_seconds": run.get("fit_seconds"),
        },
    )
    write_card(dest, card)
    return dest, checks


def publish(
    checkpoint: str | os.PathLike[str],
    name: str,
    out_dir: str | os.PathLike[str],
    base_url: str | None = None,
) -> tuple[Path, str]:
    """A hash-named inference copy ``<out_dir>/<name>-<sha256[:8]>.ckpt`` of ``checkpoint`` (weights and
    hyper-parameters, no optimiser state), its card, and the index entry to paste (YAML text).

    Returns:
        ``(path, entry_yaml)``.
    """
    import yaml

    from facezoo.hub.card import make_card, read_card, write_card
    from facezoo.hub.checkpoint import save_atomic, slim
    from facezoo.hub.download import file_sha256
    from facezoo.hub.index import NAME
    from facezoo.nn.weights import load_torch_file

    if not NAME.fullmatch(name):
        raise ValueError(f"zoo publish: --name must be '<method>.<tag>' (lower case), got {name!r}")
    ckpt = load_torch_file(checkpoint, "zoo publish")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"zoo publish: {checkpoint} is not a Lightning checkpoint (no 'state_dict')")
    out_dir = Path(out_dir)
    tmp = save_atomic(slim(ckpt), out_dir / f".{name}.publishing.ckpt")
    sha = file_sha256(tmp)
    dest = out_dir / f"{name}-{sha[:8]}.ckpt"
    os.replace(tmp, dest)
    old = read_card(checkpoint) or {}
    hp = ckpt.get("hyper_parameters") or {}
    method = str(hp.get("_class_path", old.get("method") or "FILL IN")).rpartition(".")[2]
    write_card(
        dest,
        make_card(
            dest,
            method=method,
            hyper_parameters=hp,
            metrics=old.get("metrics"),
            global_step=ckpt.get("global_step"),
            extra={"published_from": str(checkpoint)},
        ),
    )
    url = f"{base_url.rstrip('/')}/{dest.name}" if base_url else dest.name
    metrics = {
        k: {"value": v, "tolerance": 0.0, "dataset": "FILL IN", "protocol": "FILL IN"}
        for k, v in (old.get("metrics") or {}).items()
        if isinstance(v, (int, float))
    }
    entry = {
        "name": name,
        "method": method,
        "config": ["FILL IN: zoo/<method>.yaml", "zoo/data/<data>.yaml"],
        "url": url,
        "sha256": sha,
        "synthetic": "FILL IN: true or false",
        "trained_on": "FILL IN",
        "licence": "FILL IN",
        "metrics": metrics or {"FILL IN": {"value": 0.0, "dataset": "", "protocol": ""}},
    }
    return dest, yaml.safe_dump([entry], sort_keys=False, width=110)

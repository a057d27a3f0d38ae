"""The docstring examples of ``facezoo.datamodules`` and ``facezoo.callbacks``.

``--doctest-modules`` (pyproject.toml) covers ``src/facezoo``; these two packages live in top-level folders
that pytest would import a second time under other names (``datamodules.w300lp``: a second ``W300LP`` class,
which makes LightningCLI's short class names ambiguous), so their examples run here, on the installed
modules, with the same namespace as the others (``torch``, a fixed seed).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import facezoo.callbacks
import facezoo.datamodules
import pytest
import torch

MODULES = [
    f"{package.__name__}.{info.name}"
    for package in (facezoo.datamodules, facezoo.callbacks)
    for info in pkgutil.walk_packages(package.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    torch.manual_seed(0)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out: list[str] = []
    for test in finder.find(module, name, extraglobs={"torch": torch}):
        runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)


def test_the_examples_are_found():
    """The runner above sees the examples (a wrong module walk would pass vacuously)."""
    from facezoo.datamodules import _base, pairs

    found = [t for m in (_base, pairs) for t in doctest.DocTestFinder().find(m) if t.examples]
    assert {t.name.rsplit(".", 1)[-1] for t in found} >= {"batch_keys", "key_names", "read_pairs"}

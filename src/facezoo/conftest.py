"""pytest configuration for the docstring examples (``--doctest-modules``, see pyproject.toml): every example
may use ``torch`` without importing it (as kornia's do) and starts from the same random state, so examples
are deterministic; ``python -m facezoo`` (``__main__.py``) is not a module to import."""

import pytest

collect_ignore = ["__main__.py"]


@pytest.fixture(autouse=True)
def _doctest_torch(doctest_namespace):
    import torch

    torch.manual_seed(0)
    doctest_namespace["torch"] = torch

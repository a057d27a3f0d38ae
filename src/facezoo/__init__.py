"""facezoo: a PyTorch Lightning model zoo for 3D face reconstruction with 3D morphable models.

Subpackages: :mod:`facezoo.morphable` (morphable models), :mod:`facezoo.geometry` (rotations, cameras,
mesh ops), :mod:`facezoo.render` (differentiable rasterisation), :mod:`facezoo.nn`, :mod:`facezoo.losses`,
:mod:`facezoo.methods` (one LightningModule per paper), :mod:`facezoo.metrics`, :mod:`facezoo.data`,
:mod:`facezoo.datamodules` and :mod:`facezoo.callbacks`; :func:`facezoo.load_pretrained` loads a checkpoint of
the zoo (:mod:`facezoo.hub`). Importing ``facezoo`` itself is cheap.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # lazy: `import facezoo` must not import torch
    if name == "load_pretrained":
        from facezoo.hub.pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'facezoo' has no attribute {name!r}")

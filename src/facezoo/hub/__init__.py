"""The zoo as a user meets it: packaged configs (:mod:`~facezoo.hub.configs`), the checkpoint index
(:mod:`~facezoo.hub.index`), the download cache (:mod:`~facezoo.hub.download`), ``load_pretrained``
(:mod:`~facezoo.hub.pretrained`), model cards (:mod:`~facezoo.hub.card`), ``zoo build`` / ``publish``
(:mod:`~facezoo.hub.build`) and importers of officially released weights (:mod:`~facezoo.hub.importers`).

Cheap to import: nothing here loads torch until a function needs it.
"""

from __future__ import annotations

__all__ = ["load_pretrained"]


def __getattr__(name: str):
    if name == "load_pretrained":
        from facezoo.hub.pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'facezoo.hub' has no attribute {name!r}")

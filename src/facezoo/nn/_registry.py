"""The name -> (config dataclass, constructor) registry behind :func:`facezoo.nn.build`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

C = TypeVar("C")


@dataclass(frozen=True)
class Entry:
    """One registered network.

    Attributes:
        name: registry key (``facezoo.nn.build(name)``).
        config: the default configuration (a dataclass instance); ``build`` overrides fields by keyword.
        factory: ``factory(config) -> nn.Module``.
        source: the paper and section the architecture follows.
    """

    name: str
    config: Any
    factory: Callable[[Any], nn.Module]
    source: str

    @property
    def config_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.config))


REGISTRY: dict[str, Entry] = {}


def register(name: str, config: Any, factory: Callable[[Any], nn.Module], source: str) -> None:
    """Register ``factory`` under ``name`` with the default ``config`` (a dataclass instance)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(
            f"register({name!r}): config must be a dataclass instance, got {type(config).__name__}"
        )
    if name in REGISTRY:
        raise ValueError(f"register: a network named {name!r} is already registered")
    REGISTRY[name] = Entry(name, config, factory, source)


def make_config(name: str, **overrides: Any) -> Any:
    """The default config of ``name`` with ``overrides`` applied (unknown fields are an error)."""
    if name not in REGISTRY:
        raise KeyError(f"facezoo.nn: no network named {name!r}; registered: {', '.join(sorted(REGISTRY))}")
    entry = REGISTRY[name]
    unknown = sorted(set(overrides) - set(entry.config_fields))
    if unknown:
        raise TypeError(
            f"facezoo.nn.build({name!r}): unknown config field(s) {unknown}; "
            f"{type(entry.config).__name__} has {list(entry.config_fields)}"
        )
    return dataclasses.replace(entry.config, **overrides)


def build(name: str, **overrides: Any) -> nn.Module:
    """Construct the registered network ``name``, overriding config fields by keyword.

    Example:
        >>> net = build("resnet50", num_outputs=239)   # Deep3DFace's R-Net head
    """
    config = make_config(name, **overrides)
    return REGISTRY[name].factory(config)

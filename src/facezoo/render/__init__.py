"""Differentiable rendering: rasterize / interpolate / antialias (nvdiffrast's contract, swappable backends)."""

from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize

__all__ = ["interpolate", "rasterize"]

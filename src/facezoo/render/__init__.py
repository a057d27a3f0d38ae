"""Differentiable rendering: rasterize / interpolate / antialias (nvdiffrast's contract, swappable backends),
SH shading, the MeshRenderer, UV maps and image <-> mesh texture sampling."""

from facezoo.render.antialias import antialias
from facezoo.render.interpolate import interpolate
from facezoo.render.rasterize import rasterize
from facezoo.render.renderer import MeshRenderer, RenderOutput, vertex_visibility
from facezoo.render.sampling import sample_image, transfer_texture
from facezoo.render.shading import sh_basis, sh_shade
from facezoo.render.uv import render_uv, sample_uv

__all__ = [
    "MeshRenderer",
    "RenderOutput",
    "antialias",
    "interpolate",
    "rasterize",
    "render_uv",
    "sample_image",
    "sample_uv",
    "sh_basis",
    "sh_shade",
    "transfer_texture",
    "vertex_visibility",
]

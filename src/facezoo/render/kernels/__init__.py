"""Warp sources of the render kernels, one module per stage (``raster``, ``interp``, ``silhouette``,
``normals``, ``shade``, ``visibility``) plus ``_common`` (shared wp.funcs).

These modules import Warp at import time: only :mod:`facezoo.render._runtime` imports them, lazily, and the
stage modules reach them through :func:`facezoo.render._runtime.warp_kernels`. The host-side launchers live
with their stage (``backends/builtin.py`` rasterizes, ``interpolate.py`` interpolates, ...).
"""

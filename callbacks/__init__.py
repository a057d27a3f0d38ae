"""Lightning callbacks, installed as :mod:`facezoo.callbacks` (previews, mesh export, model cards)."""

from facezoo.callbacks.export import ReconstructionWriter, write_mesh, write_obj, write_points
from facezoo.callbacks.model_card import ModelCard
from facezoo.callbacks.preview import PreviewGrid

__all__ = ["ModelCard", "PreviewGrid", "ReconstructionWriter", "write_mesh", "write_obj", "write_points"]

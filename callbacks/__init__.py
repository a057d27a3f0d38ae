"""Lightning callbacks, installed as :mod:`facezoo.callbacks` (previews, mesh export, model cards)."""

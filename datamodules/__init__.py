"""LightningDataModules, installed as :mod:`facezoo.datamodules` (see DESIGN.md "Samples and batches")."""

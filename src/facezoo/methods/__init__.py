"""One LightningModule per paper, on a small shared base (see DESIGN.md "Methods")."""

"""facezoo's zoo: method configs (``*.yaml``), data overlays (``data/``), demo overlays (``demo/``) and the
checkpoint index (``index.yaml``).

Not code: this folder is installed as the package ``facezoo.zoo`` (the same package-dir mapping as
``datamodules/`` and ``callbacks/``) so that the configs ship inside the wheel; they are read with
:mod:`importlib.resources` through :mod:`facezoo.hub.configs`, and ``--config zoo/X.yaml`` finds them from any
folder.
"""

"""Package discovery that pyproject.toml cannot express on its own.

``src/facezoo`` is found normally; ``datamodules/`` and ``callbacks/`` (top-level folders, as the design card
fixes) are installed as ``facezoo.datamodules`` and ``facezoo.callbacks`` with all their subpackages, and
``zoo/`` (configs and the checkpoint index: data, its subfolders are no packages) as ``facezoo.zoo`` with the
files pyproject's package-data names, so no top-level ``datamodules``, ``callbacks`` or ``zoo`` import name is
ever installed.
"""

from setuptools import find_packages, setup

MAPPED = {"facezoo.datamodules": "datamodules", "facezoo.callbacks": "callbacks", "facezoo.zoo": "zoo"}

packages = find_packages("src")
for name, folder in MAPPED.items():
    packages += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages)

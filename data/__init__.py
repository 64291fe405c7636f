"""The datasets written for nbtoolkit (provenance in README.md). Installed inside the package as
``nbtoolkit._data`` (pyproject maps this folder there); read them with
``nbtoolkit.data.data_path(...)``. The ``build.py`` scripts that wrote them stay in the repository."""

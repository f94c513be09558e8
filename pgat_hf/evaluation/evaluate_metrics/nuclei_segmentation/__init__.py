"""The `evaluate` module folder: `evaluate.load(<this folder>)` reads nuclei_segmentation.py (this file only makes setuptools ship it)."""

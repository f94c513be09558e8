"""Local `evaluate` modules shipped with the package: `evaluate.load(NUCLEI_SEGMENTATION)` works offline."""

import os

NUCLEI_SEGMENTATION = os.path.join(os.path.dirname(__file__), "nuclei_segmentation")

"""pgat_hf: prompt group-aware training (PGAT) for robust text-guided nuclei segmentation.

The public names load on first use, so `import pgat_hf` (and `pgat-hf --help`) stay fast; the
pipeline task is registered as soon as transformers' pipelines are imported (hub/registration.py).
"""

import importlib

from pgat_hf.hub.registration import register_when_pipelines_load

PUBLIC = {
    "PGATTrainer": "pgat_hf.training.trainer",
    "PGATTrainingArguments": "pgat_hf.training.arguments",
    "PromptGroupCollator": "pgat_hf.training.collator",
    "PromptGroupSegmenter": "pgat_hf.models.modeling",
    "TextGuidedNucleiSegmentationPipeline": "pgat_hf.hub.pipeline",
    "TASK": "pgat_hf.hub.pipeline",
}
__all__ = sorted(PUBLIC)
__version__ = "0.1.0"

# `pipeline("text-guided-nuclei-segmentation", model=...)` works once pgat_hf is imported.
register_when_pipelines_load()


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'pgat_hf' has no attribute {name!r}")

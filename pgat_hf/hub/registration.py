"""Register the `text-guided-nuclei-segmentation` pipeline task when transformers' pipelines load.

`import pgat_hf` must make `pipeline("text-guided-nuclei-segmentation", ...)` work, but importing
`transformers.pipelines` costs seconds (torch and every pipeline class), which `pgat-hf --help`
should not pay. So the task is registered at once when `transformers.pipelines` is already
imported, and otherwise right after it is: a finder on `sys.meta_path` wraps the loaders of that
module and of hub/pipeline.py, and removes itself once the task is registered.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

PIPELINES_MODULE, OWN_MODULE = "transformers.pipelines", "pgat_hf.hub.pipeline"
PIPELINE_CLASS = "TextGuidedNucleiSegmentationPipeline"


def _loaded(name: str) -> bool:
    """The module is imported and has finished running (a module mid-import lacks its last names)."""
    module = sys.modules.get(name)
    return module is not None and (name != OWN_MODULE or hasattr(module, PIPELINE_CLASS))


def register_if_ready() -> bool:
    """Register the task once transformers' pipelines have loaded; True when it is registered.

    hub/pipeline.py itself imports transformers' pipelines: while it is mid-import, registration
    waits for it to finish (the finder below calls again then).
    """
    if not _loaded(PIPELINES_MODULE) or (OWN_MODULE in sys.modules and not _loaded(OWN_MODULE)):
        return False
    from transformers import AutoModel

    from pgat_hf.hub.pipeline import TASK, TextGuidedNucleiSegmentationPipeline  # may register, via the finder

    registry = sys.modules[PIPELINES_MODULE].PIPELINE_REGISTRY
    if TASK in registry.get_supported_tasks() and registry.check_task(TASK)[1]["impl"] is TextGuidedNucleiSegmentationPipeline:
        return True
    registry.register_pipeline(
        TASK, pipeline_class=TextGuidedNucleiSegmentationPipeline, pt_model=AutoModel, type="multimodal")
    for finder in [f for f in sys.meta_path if isinstance(f, _RegisterAfterLoad)]:
        sys.meta_path.remove(finder)
    return True


class _RegisterAfterLoad(importlib.abc.MetaPathFinder):
    """Finds nothing itself; gives the two modules above loaders that try to register after they run."""

    def find_spec(self, name, path=None, target=None):
        if name not in (PIPELINES_MODULE, OWN_MODULE):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            register_if_ready()

        spec.loader.exec_module = exec_module
        return spec


def register_when_pipelines_load() -> None:
    if not register_if_ready() and not any(isinstance(f, _RegisterAfterLoad) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterLoad())

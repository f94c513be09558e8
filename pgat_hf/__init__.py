"""pgat_hf: prompt group-aware training (PGAT) for robust text-guided nuclei segmentation."""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .collator import PromptGroupCollator
from .modeling import PromptGroupSegmenter
from .pipeline import TASK, TextGuidedNucleiSegmentationPipeline
from .trainer import PGATTrainer
from .training_args import PGATTrainingArguments

# `pipeline("text-guided-nuclei-segmentation", model=...)` works once pgat_hf is imported.
PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=TextGuidedNucleiSegmentationPipeline, pt_model=AutoModel,
                                    type="multimodal")

__all__ = ["PGATTrainer", "PGATTrainingArguments", "PromptGroupCollator", "PromptGroupSegmenter",
           "TextGuidedNucleiSegmentationPipeline"]
__version__ = "0.1.0"

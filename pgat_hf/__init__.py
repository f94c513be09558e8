"""pgat_hf: prompt group-aware training (PGAT) for robust text-guided nuclei segmentation."""

from .collator import PromptGroupCollator
from .modeling import PromptGroupSegmenter
from .trainer import PGATTrainer
from .training_args import PGATTrainingArguments

__all__ = ["PGATTrainer", "PGATTrainingArguments", "PromptGroupCollator", "PromptGroupSegmenter"]
__version__ = "0.1.0"

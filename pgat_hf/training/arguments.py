"""PGATTrainingArguments: the PGAT objective's knobs on top of transformers' TrainingArguments."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from pgat_hf.data.vocabulary import TASKS  # the task names' one definition
from pgat_hf.models.backends.sam3 import MASK_SOURCES
from pgat_hf.models.lora import DEFAULT_MODULES_TO_SAVE, resolve_lora_parts
from pgat_hf.training.losses import CONSISTENCY_MODES, GROUP_LOSS_MODES, MASK_LOSSES

# The smallest window the pipeline segments by (hub/pipeline.py check_tiling; a test keeps the two equal).
MIN_TILE_SIZE = 16


@dataclass
class PGATTrainingArguments(TrainingArguments):
    """K prompts of G groups per image; L = mean L_seg + λ·L_group + β·L_cons (docs/design.md §1).

    K=1 with λ=β=0 is plain fine-tuning, so the baseline comes from the same trainer.
    """

    num_prompts: int = field(default=3, metadata={"help": "K: prompts sampled from each prompt group per image."})
    groups_per_image: int = field(
        default=3,
        metadata={"help": "G: prompt groups per image per step; G>1 makes the model read the text (docs/design.md §6)."},
    )
    lambda_group: float = field(default=1.0, metadata={"help": "λ: weight of the quality-guided group loss."})
    beta_consistency: float = field(default=0.1, metadata={"help": "β: weight of the logit consistency loss."})
    tau: float = field(default=1.0, metadata={"help": "τ: temperature of the group-loss softmax over −L_seg."})
    group_loss_mode: str = field(
        default="softmin",
        metadata={"help": "softmin (stop-grad softmax weights on L_seg, always positive: trains stably), ranking "
                          "(gradient through log w; diverged at lambda 1 on the tiny model, docs/method.md), "
                          "detached (the paper as printed: value logged, no gradient)."},
    )
    consistency_mode: str = field(
        default="reference",
        metadata={"help": "reference (Z_i vs stop-grad Z_1, shuffled reference) or pairwise (all pairs, no stop-grad)."},
    )
    mask_source: str = field(
        default="semantic",
        metadata={"help": "semantic: SAM3's semantic_seg head; topk: pixel-wise max over the top-k query masks."},
    )
    mask_topk: int = field(default=5, metadata={"help": "k for mask_source=topk."})
    inference_min_area: int = field(
        default=0,
        metadata={"help": "Inference post-processing, saved with the checkpoint (config.json pgat_inference.min_area) "
                          "and used by evaluation and the pipeline: mask components smaller than this many pixels "
                          "(at the image's size) are dropped. 0 keeps everything."},
    )
    inference_presence_threshold: float = field(
        default=0.0,
        metadata={"help": "Inference post-processing, saved with the checkpoint like inference_min_area: a prompt "
                          "whose presence score (SAM3's presence head) is below this gets an empty mask. 0 never gates."},
    )
    inference_tile_size: int | None = field(
        default=None,
        metadata={"help": "Saved with the checkpoint (config.json pgat_inference.tile_size): the pipeline segments an "
                          "image larger than this many pixels window by window; at least 16. Default: the side of "
                          "the training images (0 when they are under 16 px); 0: always one pass over the whole "
                          "image."},
    )
    mask_loss: str = field(default="bce", metadata={"help": "Per-pixel mask loss: bce or focal."})
    mask_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the per-pixel mask term in L_seg."})
    dice_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the dice term in L_seg."})
    presence_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the presence BCE in L_seg."})
    bce_pos_weight: float = field(
        default=3.0, metadata={"help": "pos_weight of the mask BCE; without it short runs collapsed to empty masks."}
    )
    tasks: list[str] = field(default_factory=lambda: ["T1", "T2"], metadata={"help": "Prompt-group tasks to train on."})
    freeze_text_encoder: bool = field(default=False, metadata={"help": "Keep the text encoder fixed, as the paper does."})
    use_peft: bool = field(
        default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights; base weights stay fixed."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank r."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha; the update is scaled by alpha / r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target: str = field(
        default="all",
        metadata={"help": "SAM3 parts that get adapters: all, or a comma list of vision, text, detr_encoder, "
                          "detr_decoder, mask_decoder ('all' skips text when freeze_text_encoder)."},
    )
    lora_modules_to_save: list[str] = field(
        default_factory=lambda: list(DEFAULT_MODULES_TO_SAVE),
        metadata={"help": "Module names trained in full beside the adapters (the mask projections and presence "
                          "head by default); pass none to train adapters only."},
    )
    lora_save_merged: bool = field(
        default=True,
        metadata={"help": "Save LoRA runs as a stock Sam3Model with the adapters merged (loads without peft); "
                          "false saves adapter-only checkpoints (adapter_config.json + adapter_model.safetensors)."},
    )
    augment: bool = field(default=True, metadata={"help": "Random flips and 90° rotations of image and masks."})
    prompt_seed: int = field(
        default=0, metadata={"help": "Seed of prompt sampling; draws depend on (seed, epoch, row) only."}
    )
    max_text_length: int = field(default=32, metadata={"help": "Tokenizer max length (SAM3: 32)."})
    eval_max_images: int = field(
        default=0, metadata={"help": "Evaluate on at most this many images (0: all) to keep periodic eval cheap."}
    )

    def __post_init__(self):
        # The prompt-group columns must reach the collator.
        self.remove_unused_columns = False
        if not torch.cuda.is_available():
            # Without this, processes started by the multi-GPU launcher on a CPU machine each
            # train alone instead of joining one DDP group over gloo.
            self.use_cpu = True
        super().__post_init__()
        if self.num_prompts < 1:
            raise ValueError(f"num_prompts (K) must be >= 1, got {self.num_prompts}")
        if self.groups_per_image < 1:
            raise ValueError(f"groups_per_image (G) must be >= 1, got {self.groups_per_image}")
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if self.lambda_group < 0 or self.beta_consistency < 0:
            raise ValueError("lambda_group and beta_consistency must be >= 0")
        for name, value, allowed in (
            ("group_loss_mode", self.group_loss_mode, GROUP_LOSS_MODES),
            ("consistency_mode", self.consistency_mode, CONSISTENCY_MODES),
            ("mask_source", self.mask_source, MASK_SOURCES),
            ("mask_loss", self.mask_loss, MASK_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        unknown = [task for task in self.tasks if task not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        if self.num_prompts == 1 and (self.lambda_group or self.beta_consistency):
            # Both terms are zero for one prompt; say so rather than silently train the baseline.
            raise ValueError("num_prompts=1 makes L_group and L_cons zero: set lambda_group=0 and beta_consistency=0")
        if self.mask_topk < 1:
            raise ValueError(f"mask_topk must be >= 1, got {self.mask_topk}")
        if self.inference_min_area < 0:
            raise ValueError(f"inference_min_area must be >= 0, got {self.inference_min_area}")
        tile_size = self.inference_tile_size
        if tile_size is not None and not (tile_size == 0 or tile_size >= MIN_TILE_SIZE):
            raise ValueError(f"inference_tile_size must be 0 (one pass, no windows) or at least {MIN_TILE_SIZE} "
                             f"pixels, the pipeline's smallest window; got {tile_size}")
        if not 0.0 <= self.inference_presence_threshold <= 1.0:
            raise ValueError(f"inference_presence_threshold must be in [0, 1], got {self.inference_presence_threshold}")
        if self.lora_modules_to_save in (["none"], ["None"], [""]):
            self.lora_modules_to_save = []
        if self.use_peft:
            if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
                raise ValueError(f"need lora_r >= 1, lora_alpha > 0, 0 <= lora_dropout < 1; got "
                                 f"{self.lora_r}, {self.lora_alpha}, {self.lora_dropout}")
            resolve_lora_parts(self.lora_target, self.freeze_text_encoder)  # raises on unknown names

"""PGATTrainer: transformers' Trainer with the K-prompt PGAT objective and robustness evaluation."""

from __future__ import annotations

import functools
import json
import os
import stat
from collections import Counter, defaultdict

import safetensors.torch
import torch
from transformers import Trainer, TrainerCallback

from pgat_hf.training.checkpoints import write_complete_marker
from pgat_hf.evaluation.protocol import evaluate_robustness, flat_metrics
from pgat_hf.models.lora import ADAPTER_SUBFOLDER, apply_lora, is_peft_model, lora_scaling, merge_lora_state_dict
from pgat_hf.training.arguments import MIN_TILE_SIZE
from pgat_hf.training.losses import PGATLoss
from pgat_hf.models.inference import inference_settings_from_args

TERM_NAMES = ("seg_loss", "group_loss", "consistency_loss", "min_prompt_weight")


class CollatorEpochCallback(TrainerCallback):
    """Tells the collator the epoch, so prompt draws depend on (seed, epoch, row) only."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


def enable_activation_checkpointing(model, activation_checkpointing_kwargs=None, every_n_layers: int = 1,
                                    offload: bool = False) -> int:
    """Recompute SAM3's ViT and CLIP text layers in backward; returns how many layers were set.

    `Sam3Model` does not declare `supports_gradient_checkpointing`, so transformers refuses to do it,
    but its ViT layers (`Sam3ViTLayer`) and CLIP's encoder layers are GradientCheckpointingLayers.
    """
    from torch.utils.checkpoint import checkpoint
    from transformers.modeling_layers import GradientCheckpointingLayer

    if offload:
        raise ValueError("activation offloading is not supported for the PGAT segmenter")
    kwargs = activation_checkpointing_kwargs or {"use_reentrant": False}
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for index, layer in enumerate(layers):
        layer.gradient_checkpointing = index % every_n_layers == 0
        layer._gradient_checkpointing_func = functools.partial(checkpoint, **kwargs)
    return len(layers)


def training_tile_size(dataset, sample: int = 64) -> int:
    """The most common longer side of the first `sample` training images; 0 (one pass) without an
    image column or for images under the pipeline's smallest window."""
    if dataset is None or "image" not in (getattr(dataset, "column_names", None) or []) or len(dataset) == 0:
        return 0
    sides = Counter(max(image.size) for image in dataset.select(range(min(sample, len(dataset))))["image"])
    side = int(sides.most_common(1)[0][0])
    return side if side >= MIN_TILE_SIZE else 0


def current_umask() -> int:
    mask = os.umask(0o022)  # os.umask only reads by setting: set, then put the old one back
    os.umask(mask)
    return mask


def share_saved_weights(folder: str) -> list[str]:
    """Give the *.safetensors files of `folder` (and its LoRA adapter subfolder) the permissions of
    any new file, 0o666 minus the umask; returns the paths changed.

    safetensors' save_file writes them 0o600, so on shared storage nobody but the trainer's user
    could load a checkpoint whose config.json and tokenizer everyone can read. Only files that
    came out owner-only change: a file the user has opened up or closed further stays as it is.
    """
    mode = 0o666 & ~current_umask()
    changed = []
    for directory in (folder, os.path.join(folder, ADAPTER_SUBFOLDER)):
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.endswith(".safetensors") and os.path.isfile(path):
                current = stat.S_IMODE(os.stat(path).st_mode)
                if current == 0o600 and mode != current:
                    os.chmod(path, mode)
                    changed.append(path)
    return changed


class PGATTrainer(Trainer):
    """Trainer whose loss is `pgat_objective` over [B, G, K] prompts and whose eval is per prompt."""

    def __init__(self, model=None, args=None, *more, image_processor=None, **kwargs):
        if args is not None and model is not None:
            prepare_segmenter(model, args)
        super().__init__(model, args, *more, **kwargs)
        # The loss is a mean over prompts, not a token sum: Trainer must not rescale it (and DDP
        # would double the logged loss otherwise, docs/design.md §5).
        self.model_accepts_loss_kwargs = False
        self.image_processor = image_processor or getattr(self.data_collator, "image_processor", None)
        self._pgat_metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.last_robustness = None
        self.pgat_loss = PGATLoss.from_args(self.args)
        if self.args.inference_tile_size is None:  # in the args, so pgat_training_args.json keeps it too
            self.args.inference_tile_size = training_tile_size(self.train_dataset)
        if hasattr(self.data_collator, "epoch"):
            self.add_callback(CollatorEpochCallback(self.data_collator))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target_masks = inputs.pop("target_masks")  # [B, G, S, S]
        present = inputs.pop("present")  # [B, G]
        resampled = inputs.pop("resampled_groups", None)
        outputs = model(**inputs)
        # A backend without a presence head (CLIPSeg) returns a constant: no presence term for it.
        has_presence = getattr(self.accelerator.unwrap_model(model), "has_presence_head", True)
        terms, seg = self.pgat_loss(outputs.mask_logits, outputs.presence_logits if has_presence else None,
                                    target_masks, present)
        split = "train" if model.training else "eval"
        store = self._pgat_metrics[split]
        # Kept as tensors until `log`: an `.item()` here would stall a GPU every step.
        for name in TERM_NAMES:
            store[name].append(terms[name].detach().float())
        for name in ("mask", "dice", "presence"):
            store[f"{name}_loss"].append(seg[name].detach().float().mean())
        if resampled is not None:
            store["resampled_groups"].append(resampled.detach().float().reshape(()))
        return (terms["loss"], outputs) if return_outputs else terms["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each PGAT term since the last log (averaged over processes)."""
        split = "train" if "loss" in logs else "eval"
        store = self._pgat_metrics[split]
        if store:
            names = sorted(store)
            means = torch.stack([torch.stack(store[n]).mean() for n in names]).to(self.args.device)
            means = self.accelerator.reduce(means, reduction="mean")
            prefix = "" if split == "train" else "eval_"
            logs.update({prefix + name: round(value, 6) for name, value in zip(names, means.tolist())})
            store.clear()
        super().log(logs, start_time)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """Every prompt of every group on its own; Dice by task × quality and robustness stats."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("PGATTrainer.evaluate needs an eval_dataset")
        segmenter = self.accelerator.unwrap_model(self.model)
        result = evaluate_robustness(
            segmenter, dataset, self.processing_class, self.image_processor,
            max_text_length=self.args.max_text_length, max_images=self.args.eval_max_images,
            tasks=tuple(self.args.tasks), progress=self.is_world_process_zero() and not self.args.disable_tqdm,
            min_area=self.args.inference_min_area, presence_threshold=self.args.inference_presence_threshold,
        )
        self.last_robustness = result
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in flat_metrics(result["summary"]).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def inference_settings(self) -> dict:
        return inference_settings_from_args(vars(self.args))

    def _save_checkpoint(self, model, trial) -> None:
        """Trainer's checkpoint, then the completion marker once every process has written its part."""
        super()._save_checkpoint(model, trial)
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            write_complete_marker(folder, self.state.global_step)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save the stock model (safetensors), tokenizer and preprocessing config; no pickles.

        LoRA runs save the stock model with the adapters merged (plus the adapter in
        `lora_adapter/`, for resuming), or with lora_save_merged=false the adapter alone.
        """
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model).model
        if state_dict is not None:  # FSDP / DeepSpeed hand a full state dict of the wrapper
            prefix = "backend.model."
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if is_peft_model(model):
            self._save_peft(output_dir, model, state_dict)
        else:
            model.config.pgat_inference = self.inference_settings()  # read back by factory.inference_settings
            model.save_pretrained(output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(output_dir)
        with open(os.path.join(output_dir, "pgat_training_args.json"), "w") as handle:
            json.dump(self.args.to_dict(), handle, indent=2, default=str)
        share_saved_weights(output_dir)

    def _save_peft(self, output_dir: str, peft_model, state_dict: dict | None) -> None:
        state_dict = state_dict if state_dict is not None else peft_model.state_dict()
        base = peft_model.get_base_model()
        base.config.pgat_inference = self.inference_settings()
        if not self.args.lora_save_merged:
            peft_model.save_pretrained(output_dir, state_dict=state_dict)
            return
        merged = merge_lora_state_dict(state_dict, lora_scaling(peft_model))
        base.save_pretrained(output_dir, state_dict=merged)
        # The adapter goes in a subfolder: an adapter_config.json at the root would make stock
        # `from_pretrained` look for the base model instead of reading the merged weights.
        peft_model.save_pretrained(os.path.join(output_dir, ADAPTER_SUBFOLDER), state_dict=state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Checkpoints hold the stock model's weights (or the LoRA adapter); load them into the wrapped model."""
        model = model if model is not None else self.model
        stock_model = self.accelerator.unwrap_model(model).model
        if is_peft_model(stock_model):
            return self._load_adapter(resume_from_checkpoint, stock_model)
        path = os.path.join(resume_from_checkpoint, "model.safetensors")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model.safetensors in checkpoint {resume_from_checkpoint}")
        state_dict = safetensors.torch.load_file(path, device="cpu")
        result = stock_model.load_state_dict(state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"checkpoint {path} does not match the model: missing {result.missing_keys[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")

    def _load_adapter(self, checkpoint: str, peft_model) -> None:
        """Resume a LoRA run: the base weights are the ones it started from; restore the adapter."""
        from peft import set_peft_model_state_dict

        candidates = [os.path.join(checkpoint, "adapter_model.safetensors"),
                      os.path.join(checkpoint, ADAPTER_SUBFOLDER, "adapter_model.safetensors")]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise FileNotFoundError(f"no LoRA adapter in checkpoint {checkpoint} (looked for {candidates})")
        result = set_peft_model_state_dict(peft_model, safetensors.torch.load_file(path, device="cpu"))
        if result.unexpected_keys:
            raise ValueError(f"adapter {path} does not match the model: unexpected {result.unexpected_keys[:5]}")

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)


def prepare_segmenter(segmenter, args) -> None:
    """Apply what the arguments ask of the model before Trainer builds its optimizer.

    LoRA wraps the stock model in place (`segmenter.backend.model` becomes a PeftModel);
    freeze_text_encoder fixes the text encoder; activation checkpointing is attached so that
    Trainer's `activation_checkpointing` flag reaches SAM3's layers.
    """
    if getattr(args, "use_peft", False) and not is_peft_model(segmenter.backend.model):
        segmenter.backend.model = apply_lora(
            segmenter.backend.model, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
            target=args.lora_target, modules_to_save=args.lora_modules_to_save,
            freeze_text_encoder=args.freeze_text_encoder,
        )
    if getattr(args, "freeze_text_encoder", False):
        for parameter in segmenter.backend.text_encoder.parameters():
            parameter.requires_grad_(False)
    if not hasattr(segmenter, "activation_checkpointing_enable"):
        # Trainer calls model.activation_checkpointing_enable(...) when args.activation_checkpointing.
        segmenter.activation_checkpointing_enable = functools.partial(enable_activation_checkpointing, segmenter)

"""PGATTrainer: transformers' Trainer with the K-prompt PGAT objective and robustness evaluation."""

from __future__ import annotations

import json
import os
from collections import defaultdict

import safetensors.torch
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from .evaluation import evaluate_robustness, flat_metrics
from .losses import pgat_objective, segmentation_loss

TERM_NAMES = ("seg_loss", "group_loss", "consistency_loss", "min_prompt_weight")


class CollatorEpochCallback(TrainerCallback):
    """Tells the collator the epoch, so prompt draws depend on (seed, epoch, row) only."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


class PGATTrainer(Trainer):
    """Trainer whose loss is `pgat_objective` over [B, G, K] prompts and whose eval is per prompt."""

    def __init__(self, *args, image_processor=None, **kwargs):
        super().__init__(*args, **kwargs)
        # The loss is a mean over prompts, not a token sum: Trainer must not rescale it (and DDP
        # would double the logged loss otherwise, DESIGN.md §5).
        self.model_accepts_loss_kwargs = False
        self.image_processor = image_processor or getattr(self.data_collator, "image_processor", None)
        self._pgat_metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.last_robustness = None
        if hasattr(self.data_collator, "epoch"):
            self.add_callback(CollatorEpochCallback(self.data_collator))
        if self.args.freeze_text_encoder:
            for parameter in self.model.model.text_encoder.parameters():
                parameter.requires_grad_(False)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target_masks = inputs.pop("target_masks")  # [B, G, S, S]
        present = inputs.pop("present")  # [B, G]
        resampled = inputs.pop("resampled_groups", None)
        outputs = model(**inputs)
        args = self.args
        num_prompts = outputs.mask_logits.shape[2]
        # Loss at the input resolution: small nuclei vanish when masks are downsampled to the logits.
        size = target_masks.shape[-2:]
        mask_logits = outputs.mask_logits.float()
        upsampled = F.interpolate(mask_logits.flatten(0, 2)[:, None], size=size, mode="bilinear", align_corners=False)
        upsampled = upsampled.reshape(*mask_logits.shape[:3], *size)
        targets = target_masks[:, :, None].expand_as(upsampled)
        seg = segmentation_loss(
            upsampled, targets, outputs.presence_logits.float(), present[:, :, None].expand(-1, -1, num_prompts),
            mask_loss=args.mask_loss, mask_weight=args.mask_loss_weight, dice_weight=args.dice_loss_weight,
            presence_weight=args.presence_loss_weight,
            pos_weight=args.bce_pos_weight if args.mask_loss == "bce" else None,
        )
        terms = pgat_objective(
            seg["total"], mask_logits, lam=args.lambda_group, beta=args.beta_consistency, tau=args.tau,
            group_mode=args.group_loss_mode, consistency_mode=args.consistency_mode,
        )
        split = "train" if model.training else "eval"
        store = self._pgat_metrics[split]
        for name in TERM_NAMES:
            store[name].append(terms[name].detach().float().item())
        for name in ("mask", "dice", "presence"):
            store[f"{name}_loss"].append(seg[name].detach().mean().item())
        if resampled is not None:
            store["resampled_groups"].append(float(resampled))
        return (terms["loss"], outputs) if return_outputs else terms["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each PGAT term since the last log (averaged over processes)."""
        split = "train" if "loss" in logs else "eval"
        store = self._pgat_metrics[split]
        if store:
            names = sorted(store)
            means = torch.tensor([sum(store[n]) / len(store[n]) for n in names], device=self.args.device)
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
        )
        self.last_robustness = result
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in flat_metrics(result["summary"]).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save the stock model (safetensors), tokenizer and preprocessing config; no pickles."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        stock_model = self.accelerator.unwrap_model(self.model).model
        stock_model.config.pgat_inference = {  # read back by factory.inference_settings
            "mask_source": self.args.mask_source, "mask_topk": self.args.mask_topk,
            "max_text_length": self.args.max_text_length, "threshold": 0.5,
        }
        if state_dict is not None:  # FSDP / DeepSpeed hand a full state dict of the wrapper
            prefix = "backend.model."
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        stock_model.save_pretrained(output_dir, state_dict=state_dict)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(output_dir)
        with open(os.path.join(output_dir, "pgat_training_args.json"), "w") as handle:
            json.dump(self.args.to_dict(), handle, indent=2, default=str)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Checkpoints hold the stock model's weights; load them into the wrapped model."""
        model = model if model is not None else self.model
        path = os.path.join(resume_from_checkpoint, "model.safetensors")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model.safetensors in checkpoint {resume_from_checkpoint}")
        state_dict = safetensors.torch.load_file(path, device="cpu")
        result = self.accelerator.unwrap_model(model).model.load_state_dict(state_dict, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"checkpoint {path} does not match the model: missing {result.missing_keys[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)

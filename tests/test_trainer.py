"""Real training steps of the tiny model through PGATTrainer."""

import json
import os

import pytest
import torch
from transformers import Sam3Model, TrainerCallback

from pgat_hf import PGATTrainer
from pgat_hf import PGATTrainingArguments
from pgat_hf import PromptGroupCollator
from pgat_hf.models.factory import build_tiny_model, make_segmenter

LOGGED_TERMS = ("loss", "seg_loss", "group_loss", "consistency_loss", "min_prompt_weight", "mask_loss",
                "dice_loss", "presence_loss", "resampled_groups")


def make_trainer(splits, output_dir, hidden_size=16, **overrides):
    model, tokenizer, image_processor = build_tiny_model(seed=0, hidden_size=hidden_size, image_size=64)
    settings = dict(output_dir=str(output_dir), max_steps=4, per_device_train_batch_size=2, learning_rate=2e-3,
                    logging_steps=2, save_strategy="no", report_to="none", disable_tqdm=True,
                    dataloader_pin_memory=False, use_cpu=True, seed=0)
    args = PGATTrainingArguments(**{**settings, **overrides})
    collator = PromptGroupCollator(tokenizer=tokenizer, image_processor=image_processor,
                                   num_prompts=args.num_prompts, groups_per_image=args.groups_per_image,
                                   tasks=tuple(args.tasks), seed=args.prompt_seed)
    return PGATTrainer(model=make_segmenter(model, args.mask_source), args=args, train_dataset=splits["train"],
                       eval_dataset=splits["test"], data_collator=collator, processing_class=tokenizer,
                       image_processor=image_processor)


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize("group_mode", ["ranking", "softmin", "detached"])
def test_pgat_steps_log_every_term_and_change_parameters(synthetic_splits, tmp_path, group_mode):
    trainer = make_trainer(synthetic_splits, tmp_path, group_loss_mode=group_mode)
    before = snapshot(trainer.model.model)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "seg_loss" in entry]
    assert len(logs) == 2
    for term in LOGGED_TERMS:
        assert all(term in entry for entry in logs), term
    assert logs[0]["resampled_groups"] == 0
    after = snapshot(trainer.model.model)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    for part in ("vision_encoder", "text_encoder", "detr_decoder", "mask_decoder"):
        assert any(name.startswith(part) for name in changed), part
    # The static MiniLM token table stays as shipped; the text layer above it trains.
    assert "text_encoder.text_model.embeddings.token_embedding.weight" not in changed
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight" in changed
    if group_mode == "ranking":
        assert all(entry["group_loss"] <= 0 for entry in logs)  # −Σ(L_i − L̄)²/τ
        assert all(entry["min_prompt_weight"] <= 1 / 3 + 1e-6 for entry in logs)


def test_baseline_and_topk_and_frozen_text_encoder(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path, num_prompts=1, lambda_group=0.0, beta_consistency=0.0,
                           mask_source="topk", mask_loss="focal", freeze_text_encoder=True, max_steps=2)
    text_before = snapshot(trainer.model.model.text_encoder)
    trainer.train()
    text_after = snapshot(trainer.model.model.text_encoder)
    assert all(torch.equal(text_before[n], text_after[n]) for n in text_before)
    entry = next(e for e in trainer.state.log_history if "seg_loss" in e)
    assert entry["consistency_loss"] == 0 and entry["group_loss"] == 0


def test_evaluate_reports_dice_by_task_and_quality(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=1)
    metrics = trainer.evaluate()
    for key in ("eval_dice_T1", "eval_dice_T2", "eval_dice_T1_low", "eval_dice_T2_high", "eval_dice_T2_held_out",
                "eval_dice_std_T2", "eval_worst_dice_T1", "eval_pairwise_agreement_T2"):
        assert key in metrics and 0.0 <= metrics[key] <= 1.0, key
    records = trainer.last_robustness["records"]
    prompts_in_split = sum(len(g["prompts"]) for row in synthetic_splits["test"] for g in row["prompt_groups"])
    assert len(records) == prompts_in_split


def test_checkpoint_is_a_stock_sam3_model(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=2, inference_min_area=12,
                           inference_presence_threshold=0.4)
    trainer.train()
    trainer.save_model(str(tmp_path))
    files = set(os.listdir(tmp_path))
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth"))], files
    reloaded = Sam3Model.from_pretrained(tmp_path)
    trained = trainer.model.model.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, trained[name]), name
    assert json.load(open(tmp_path / "preprocessor_config.json"))["size"] == {"height": 64, "width": 64}
    # how it infers travels with it: stock Sam3Config keeps the extra key
    assert reloaded.config.pgat_inference == {"mask_source": "semantic", "mask_topk": 5, "max_text_length": 32,
                                              "threshold": 0.5, "min_area": 12, "presence_threshold": 0.4,
                                              "tile_size": 64}  # the training tiles' side
    assert json.load(open(tmp_path / "pgat_training_args.json"))["inference_tile_size"] == 64
    with pytest.raises(ValueError, match="inference_min_area"):
        PGATTrainingArguments(output_dir=str(tmp_path), inference_min_area=-1)
    with pytest.raises(ValueError, match="inference_presence_threshold"):
        PGATTrainingArguments(output_dir=str(tmp_path), inference_presence_threshold=1.5)



@pytest.mark.parametrize("tile_size", [-1, 8, 15])
def test_an_inference_tile_size_the_pipeline_refuses_is_refused_before_training(tmp_path, tile_size):
    from pgat_hf.hub.pipeline import check_tiling
    from pgat_hf.training.arguments import MIN_TILE_SIZE

    with pytest.raises(ValueError, match=rf"inference_tile_size must be 0 \(one pass, no windows\) or at least 16 "
                                         rf"pixels, the pipeline's smallest window; got {tile_size}"):
        PGATTrainingArguments(output_dir=str(tmp_path), inference_tile_size=tile_size)
    with pytest.raises(ValueError, match="at least 16"):
        check_tiling(tile_size, None)
    for accepted in (0, MIN_TILE_SIZE):  # the same bound on both sides
        args = PGATTrainingArguments(output_dir=str(tmp_path), inference_tile_size=accepted)
        assert args.inference_tile_size == accepted
        check_tiling(accepted, None)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)], ids=["umask-022", "umask-027"])
def test_saved_weights_are_readable_as_the_umask_allows(synthetic_splits, tmp_path, umask, mode):
    """safetensors writes 0o600; the saved checkpoint's weights get a new file's mode, like its config.json."""
    trainer = make_trainer(synthetic_splits, tmp_path / "out", max_steps=1)
    previous = os.umask(umask)
    try:
        trainer.save_model(str(tmp_path / "checkpoint"))
    finally:
        os.umask(previous)
    permissions = {name: os.stat(tmp_path / "checkpoint" / name).st_mode & 0o777
                   for name in ("model.safetensors", "config.json")}
    assert permissions == {"model.safetensors": mode, "config.json": mode}


def test_short_training_run_learns_t1(synthetic_splits, tmp_path):
    """docs/design.md §6 CI budget: hidden 16, 300 steps, K=1 reaches T1 Dice ~0.9 in ~25 s."""
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=300, num_prompts=1, lambda_group=0.0,
                           beta_consistency=0.0, warmup_steps=15, lr_scheduler_type="cosine",
                           logging_steps=50, weight_decay=0.01, max_grad_norm=1.0)
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "seg_loss" in e]
    assert losses[-1] < 0.7 * losses[0], losses
    metrics = trainer.evaluate()
    assert metrics["eval_dice_T1"] > 0.7, metrics


class StopAfter(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_resume_from_checkpoint_gives_the_same_weights(synthetic_splits, tmp_path):
    """Stop after a checkpoint, resume in a fresh trainer: same final weights as one straight run."""
    straight = make_trainer(synthetic_splits, tmp_path / "straight", max_steps=6, save_strategy="no")
    straight.train()
    first = make_trainer(synthetic_splits, tmp_path / "resumed", max_steps=6, save_strategy="steps", save_steps=3)
    first.add_callback(StopAfter(3))  # the "killed" run: its last act is checkpoint-3 of a 6-step schedule
    first.train()
    assert (tmp_path / "resumed" / "checkpoint-3" / "model.safetensors").exists()
    resumed = make_trainer(synthetic_splits, tmp_path / "resumed", max_steps=6, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-3"))
    expected, actual = straight.model.model.state_dict(), resumed.model.model.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)

"""PEFT LoRA: adapters train, base weights stay, merged checkpoints are stock; precision and checkpointing flags."""

import os
import re

import pytest
import torch
from test_trainer import StopAfter, make_trainer, snapshot
from transformers import Sam3Model

from pgat_hf.hub.model_card import write_model_card
from pgat_hf.models.factory import build_tiny_model, load_merged_adapter, make_segmenter
from pgat_hf.models.lora import ALL_PARTS, LORA_TARGET_PRESETS, apply_lora, resolve_lora_parts
from pgat_hf.training.arguments import PGATTrainingArguments

LORA = dict(use_peft=True, lora_r=4, lora_alpha=8.0, learning_rate=1e-2)


def one_batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}


def logits(segmenter, batch):
    segmenter.eval()
    with torch.no_grad():
        return segmenter(**batch).mask_logits


def test_presets_cover_every_part_and_nothing_else():
    model, _, _ = build_tiny_model(hidden_size=16, image_size=64)
    names = [name for name, _ in model.named_modules()]
    for part, pattern in LORA_TARGET_PRESETS.items():
        matched = [n for n in names if re.fullmatch(pattern, n)]
        assert matched, part
        prefix = {"vision": "vision_encoder", "text": "text_encoder"}.get(part, part)
        assert all(n.startswith(prefix) for n in matched), (part, matched)
    assert resolve_lora_parts("all") == list(ALL_PARTS)
    assert "text" not in resolve_lora_parts("all", freeze_text_encoder=True)
    assert resolve_lora_parts("mask_decoder, vision") == ["vision", "mask_decoder"]
    with pytest.raises(ValueError, match="unknown lora_target"):
        PGATTrainingArguments(output_dir="x", use_peft=True, lora_target="vision,heads")
    with pytest.raises(ValueError, match="freeze_text_encoder"):
        PGATTrainingArguments(output_dir="x", use_peft=True, lora_target="text", freeze_text_encoder=True)


def test_lora_trains_adapters_only_and_saves_a_merged_stock_checkpoint(synthetic_splits, tmp_path):
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=3, freeze_text_encoder=True, **LORA)
    peft_model = trainer.model.model
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or ".modules_to_save." in n for n in trainable)
    assert not any("text_encoder" in n for n in trainable)  # 'all' skips the frozen text encoder
    before = snapshot(peft_model)
    trainer.train()
    after = snapshot(peft_model)
    frozen = [n for n in before if n not in trainable]
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    # mask_embedder only feeds the query masks (mask_source=topk); the semantic head never reaches it.
    unchanged = [n for n in trainable if ".lora_B." in n and "mask_embedder" not in n
                 and torch.equal(before[n], after[n])]
    assert not unchanged, unchanged
    assert any(not torch.equal(before[n], after[n]) for n in trainable if ".modules_to_save." in n)

    out = tmp_path / "merged"
    trainer.save_model(str(out))
    files = set(os.listdir(out))
    assert {"config.json", "model.safetensors", "tokenizer.json", "lora_adapter"} <= files
    assert "adapter_config.json" not in files  # would make stock from_pretrained look for a base model
    reloaded = Sam3Model.from_pretrained(out)  # stock class, strict key match
    assert not any("lora" in n or "base_layer" in n for n in reloaded.state_dict())
    batch = one_batch(trainer)
    torch.testing.assert_close(logits(make_segmenter(reloaded), batch), logits(trainer.model, batch),
                               atol=1e-4, rtol=1e-4)


def test_adapter_only_checkpoint_reloads_onto_its_base(synthetic_splits, tmp_path):
    base, _, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64)
    base.save_pretrained(tmp_path / "base")  # make_trainer builds the same seed-0 weights
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=2, lora_save_merged=False, **LORA)
    trainer.train()
    out = tmp_path / "adapter"
    trainer.save_model(str(out))
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    merged = load_merged_adapter(str(out), base_model=str(tmp_path / "base"))
    assert type(merged) is Sam3Model and merged.config.pgat_inference["mask_source"] == "semantic"
    batch = one_batch(trainer)
    torch.testing.assert_close(logits(make_segmenter(merged), batch), logits(trainer.model, batch),
                               atol=1e-4, rtol=1e-4)
    # Built in-process, the base has no name for adapter_config.json: the card says so instead of
    # calling the adapter a random-init model, and its snippets leave the base to fill in.
    text = open(write_model_card(out)).read()
    assert "| base model | not named in adapter_config.json (this folder is a LoRA adapter on it" in text
    assert 'load_segmenter(adapter_dir, base_model="BASE_MODEL")' in text
    assert "random initial weights" not in text and "license:" not in text


def test_lora_resume_gives_the_same_adapter_as_a_straight_run(synthetic_splits, tmp_path):
    straight = make_trainer(synthetic_splits, tmp_path / "straight", max_steps=4, **LORA)
    straight.train()
    first = make_trainer(synthetic_splits, tmp_path / "run", max_steps=4, save_strategy="steps", save_steps=2, **LORA)
    first.add_callback(StopAfter(2))
    first.train()
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "lora_adapter" / "adapter_model.safetensors").exists()
    resumed = make_trainer(synthetic_splits, tmp_path / "run", max_steps=4, **LORA)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    expected, actual = straight.model.model.state_dict(), resumed.model.model.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=1e-5, msg=name)


def test_activation_checkpointing_matches_plain_backward(synthetic_splits, tmp_path):
    plain = make_trainer(synthetic_splits, tmp_path / "plain", max_steps=2)
    plain.train()
    checkpointed = make_trainer(synthetic_splits, tmp_path / "ckpt", max_steps=2, activation_checkpointing=True)
    checkpointed.train()
    layers = [m for m in checkpointed.model.modules() if getattr(m, "gradient_checkpointing", False)]
    assert len(layers) >= 2  # the ViT layers and the CLIP text layer
    expected, actual = plain.model.model.state_dict(), checkpointed.model.model.state_dict()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-5, rtol=1e-4, msg=name)


# accelerate autocasts bf16 on CPU; fp16 it accepts but runs in fp32 there (no native CPU fp16 amp).
@pytest.mark.parametrize("precision, compute_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float32)])
def test_mixed_precision_flags_train_on_cpu(synthetic_splits, tmp_path, precision, compute_dtype):
    trainer = make_trainer(synthetic_splits, tmp_path, max_steps=2, **{precision: True})
    seen = set()
    layer = trainer.model.model.vision_encoder.backbone.layers[0].mlp.fc1
    layer.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    before = snapshot(trainer.model.model)
    trainer.train()
    assert seen == {compute_dtype}
    loss = [e["loss"] for e in trainer.state.log_history if "seg_loss" in e]
    assert loss and all(torch.isfinite(torch.tensor(loss)))
    after = snapshot(trainer.model.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, not a cast


def test_a_text_encoder_without_layers_gets_no_text_adapters():
    """tiny_text_layers 0 (a text encoder of frozen vectors only): 'all' adapts the other parts; naming text is refused."""
    model, _, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64, text_layers=0)
    adapted = apply_lora(model, r=2, alpha=4, target="all", modules_to_save=[])
    names = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert names and all(".lora_" in n and "text_encoder" not in n for n in names)
    with pytest.raises(ValueError, match="has no layers"):
        apply_lora(build_tiny_model(seed=0, hidden_size=16, image_size=64, text_layers=0)[0], target="text,vision")

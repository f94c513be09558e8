"""CLIPSeg backend: the shared path (image encoded once, G×K decodes) equals K stock forwards,
and the trainer and the robustness evaluator run on it."""

import pytest
import torch

from pgat_hf import PGATTrainer
from pgat_hf import PGATTrainingArguments
from pgat_hf import PromptGroupCollator
from pgat_hf.models.backends.clipseg import (ALWAYS_PRESENT_LOGIT, CLIPSEG_IMAGE_MEAN, CLIPSEG_IMAGE_SIZE, CLIPSegBackend,
                                      build_tiny_clipseg, load_clipseg, tiny_clipseg_config)
from pgat_hf.evaluation.protocol import evaluate_robustness
from pgat_hf.models.modeling import PromptGroupSegmenter

TEXTS = ["nuclei", "all cell nuclei", "segment every nucleus", "inflammatory nuclei",
         "lymphocytes", "delineate every immune cell nucleus"]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_clipseg(seed=0)[1]


def tiny_segmenter(tokenizer, seed=0, train_clip=False):
    model, _, image_processor = build_tiny_clipseg(seed=seed, image_size=64, tokenizer=tokenizer, hidden_size=16,
                                                 patch_size=8)  # 8×8 tokens: fast
    return PromptGroupSegmenter(CLIPSegBackend(model, train_clip=train_clip)), image_processor


def prompt_batch(tokenizer, batch=2, groups=2, prompts=3, length=32):
    tokens = tokenizer(TEXTS * batch, padding="max_length", max_length=length, return_tensors="pt")
    shape = (batch, groups, prompts, length)
    return tokens["input_ids"].reshape(shape), tokens["attention_mask"].reshape(shape)


def snapshot(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def test_shared_encoding_equals_separate_forwards(tokenizer):
    segmenter, _ = tiny_segmenter(tokenizer)
    segmenter.eval()
    torch.manual_seed(1)
    pixel_values = torch.randn(2, 3, 64, 64)
    input_ids, attention_mask = prompt_batch(tokenizer)
    with torch.no_grad():
        shared = segmenter(pixel_values, input_ids, attention_mask)
        separate = segmenter.forward_separately(pixel_values, input_ids, attention_mask)
    assert shared.mask_logits.shape == (2, 2, 3, 64, 64)  # logits at the input size
    torch.testing.assert_close(shared.mask_logits, separate.mask_logits, atol=1e-4, rtol=1e-4)
    assert torch.equal(shared.presence_logits, torch.full((2, 2, 3), ALWAYS_PRESENT_LOGIT))
    assert torch.equal(separate.presence_logits, shared.presence_logits)
    # Different prompts and different images must differ, or the equality above would prove nothing.
    assert (shared.mask_logits[0, 0, 0] - shared.mask_logits[0, 1, 0]).abs().max() > 1e-4
    assert (shared.mask_logits[0, 0, 0] - shared.mask_logits[1, 0, 0]).abs().max() > 1e-4
    assert not segmenter.has_presence_head


def test_image_encoded_once_per_batch(tokenizer):
    segmenter, _ = tiny_segmenter(tokenizer)
    vision_calls, text_calls = [], []
    clip = segmenter.model.clip
    hooks = [clip.vision_model.register_forward_hook(lambda *args: vision_calls.append(1)),
             clip.text_model.register_forward_hook(lambda *args: text_calls.append(1))]
    input_ids, attention_mask = prompt_batch(tokenizer)
    segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    assert (len(vision_calls), len(text_calls)) == (1, 1)  # 2 images × 2 groups × 3 prompts
    segmenter.forward_separately(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    assert len(vision_calls) == 1 + 6  # the reference encodes the images again for every prompt
    for hook in hooks:
        hook.remove()


@pytest.mark.parametrize("train_clip", [False, True])
def test_gradients_reach_decoder_and_clip_only_when_asked(tokenizer, train_clip):
    segmenter, _ = tiny_segmenter(tokenizer, train_clip=train_clip)
    segmenter.train()
    input_ids, attention_mask = prompt_batch(tokenizer)
    out = segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    assert not out.presence_logits.requires_grad
    out.mask_logits.square().mean().backward()
    model = segmenter.model
    assert segmenter.backend.text_encoder is model.clip.text_model  # what freeze_text_encoder fixes
    for name in ("decoder", "clip.vision_model", "clip.text_model"):
        grads = [p.grad for p in model.get_submodule(name).parameters() if p.grad is not None]
        expected = name == "decoder" or train_clip
        assert (bool(grads) and any(g.abs().sum() > 0 for g in grads)) == expected, name


def make_trainer(splits, output_dir, tokenizer, **overrides):
    segmenter, image_processor = tiny_segmenter(tokenizer)
    settings = dict(output_dir=str(output_dir), max_steps=3, per_device_train_batch_size=2, learning_rate=2e-3,
                    logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                    dataloader_pin_memory=False, use_cpu=True, seed=0, eval_max_images=2)
    args = PGATTrainingArguments(**{**settings, **overrides})
    collator = PromptGroupCollator(tokenizer=tokenizer, image_processor=image_processor,
                                   num_prompts=args.num_prompts, groups_per_image=args.groups_per_image,
                                   tasks=tuple(args.tasks), seed=args.prompt_seed)
    return PGATTrainer(model=segmenter, args=args, train_dataset=splits["train"], eval_dataset=splits["test"],
                       data_collator=collator, processing_class=tokenizer, image_processor=image_processor)


def test_pgat_steps_train_the_decoder_and_save_a_stock_checkpoint(synthetic_splits, tmp_path, tokenizer):
    trainer = make_trainer(synthetic_splits, tmp_path, tokenizer)
    before = snapshot(trainer.model.model)
    trainer.train()
    after = snapshot(trainer.model.model)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(name.startswith("decoder.") for name in changed)
    assert not any(name.startswith("clip.") for name in changed)  # CLIP frozen, as in the stock forward
    logs = [entry for entry in trainer.state.log_history if "seg_loss" in entry]
    assert len(logs) == 3
    assert all(torch.isfinite(torch.tensor([e["loss"], e["consistency_loss"], e["group_loss"]])).all() for e in logs)
    # The checkpoint is the stock model: it reloads with load_clipseg and gives the same logits.
    trainer.save_model(str(tmp_path / "ckpt"))
    model, tokenizer2, image_processor = load_clipseg(str(tmp_path / "ckpt"))
    assert image_processor.image_size == 64 and image_processor.image_mean == pytest.approx(CLIPSEG_IMAGE_MEAN)
    ids = tokenizer2(TEXTS[:2], padding="max_length", max_length=32, return_tensors="pt")
    assert torch.equal(ids["input_ids"], tokenizer(TEXTS[:2], padding="max_length", max_length=32,
                                                   return_tensors="pt")["input_ids"])
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reloaded = model(pixel_values=pixel_values, **ids).logits
        trained = trainer.model.model.eval()(pixel_values=pixel_values, **ids).logits
    torch.testing.assert_close(reloaded, trained)


def test_evaluate_robustness_runs_on_clipseg(synthetic_splits, tokenizer):
    segmenter, image_processor = tiny_segmenter(tokenizer)
    result = evaluate_robustness(segmenter, synthetic_splits["test"], tokenizer, image_processor, max_images=2,
                                 progress=False)
    summary = result["summary"]
    assert summary["num_images"] == 2
    for task in ("T1", "T2"):
        assert 0.0 <= summary["dice"][task]["all"] <= 1.0
        assert task in summary["robustness"]
    assert all(record["presence_score"] == pytest.approx(1.0, abs=1e-4) for record in result["records"])


def test_tokenizer_ends_prompts_with_the_pooled_token(tokenizer):
    ids = tokenizer(["all cell nuclei"])["input_ids"][0]
    # CLIPSeg pools the end token; with eos id 2 it would pool the highest id instead (see clipseg.py).
    assert ids[-1] == tokenizer.eos_token_id == len(tokenizer) - 1 != 2
    assert tiny_clipseg_config(vocab_size=10).text_config.eos_token_id == 9
    assert tiny_clipseg_config(vocab_size=10, image_size=64).vision_config.patch_size == 4  # 16×16 tokens
    with pytest.raises(ValueError, match="eos_token_id 2"):
        tiny_clipseg_config(vocab_size=10, eos_token_id=2)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        tiny_clipseg_config(vocab_size=10, image_size=60, patch_size=8)


def test_load_clipseg_defaults_to_clip_preprocessing_at_352(tmp_path, tokenizer):
    model, _, _ = build_tiny_clipseg(seed=0, tokenizer=tokenizer, hidden_size=16)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)  # no preprocessor_config.json: fall back to CLIPSeg's own
    _, _, image_processor = load_clipseg(str(tmp_path))
    assert image_processor.image_size == CLIPSEG_IMAGE_SIZE == 352
    assert image_processor.image_mean == pytest.approx(CLIPSEG_IMAGE_MEAN)


def test_clipseg_end_to_end_train_card_eval_and_pipeline(synthetic_dir, tmp_path):
    """The README's CLIPSeg path: train.py writes the checkpoint, report and card; the pipeline
    serves it and gives the evaluator's masks."""
    import numpy as np
    from transformers import pipeline

    import pgat_hf  # noqa: F401  (registers the task)
    from pgat_hf.models.factory import load_segmenter
    from pgat_hf.models.inference import predict_masks
    from pgat_hf.train import main as train_main

    out = tmp_path / "clipseg"
    train_main(["--config", "pgat_hf/recipes/demo.yaml", "--backend", "clipseg", "--clipseg_train_clip", "true",
                "--dataset_path", synthetic_dir, "--synthetic_num_train", "16", "--synthetic_num_test", "4",
                "--synthetic_image_size", "64", "--tiny_image_size", "64", "--tiny_hidden_size", "16",
                "--max_steps", "2", "--per_device_train_batch_size", "1", "--groups_per_image", "2",
                "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--report_max_images", "1",
                "--output_dir", str(out), "--disable_tqdm", "true"])
    card = (out / "README.md").read_text()
    assert "transformers.CLIPSegForImageSegmentation.from_pretrained" in card and "- clipseg" in card
    assert "| input size | 64 × 64 px" in card

    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    prompts = ["all nuclei", "lymphoid nuclei"]
    seg = pipeline("text-guided-nuclei-segmentation", model=str(out))
    results = seg(image, prompts=prompts, tile_size=0)  # one pass, as the evaluator runs a tile
    windowed = seg(image, prompts=prompts)  # 70 px > the 64-px training tiles: two windows by default
    assert [r["mask"].size for r in windowed] == [(70, 50)] * 2
    segmenter, tokenizer, image_processor, settings = load_segmenter(str(out))
    masks, presence = predict_masks(segmenter, image_processor, tokenizer, image, prompts, settings["max_text_length"],
                                    settings["threshold"], settings["min_area"], settings["presence_threshold"])
    for result, mask, score in zip(results, masks, presence):
        assert result["mask"].size == (70, 50)
        np.testing.assert_array_equal(np.asarray(result["mask"]) > 0, mask)
        assert result["score"] == pytest.approx(float(score), abs=1e-6)

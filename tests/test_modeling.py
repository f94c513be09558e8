"""The shared path (image encoded once, G×K decodes) equals K complete forwards."""

import pytest
import torch

from pgat_hf.models.backends.sam3 import tiny_sam3_config
from pgat_hf.models.factory import build_tiny_model, make_segmenter


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer, image_processor = build_tiny_model(seed=0, hidden_size=16, image_size=64)
    return model, tokenizer


def prompt_batch(tokenizer, batch=2, groups=2, prompts=3, length=32):
    texts = ["nuclei", "all cell nuclei", "segment every nucleus", "inflammatory nuclei",
             "lymphocytes", "delineate every immune cell nucleus"]
    tokens = tokenizer(texts * batch, padding="max_length", max_length=length, return_tensors="pt")
    shape = (batch, groups, prompts, length)
    return tokens["input_ids"].reshape(shape), tokens["attention_mask"].reshape(shape)


@pytest.mark.parametrize("mask_source", ["semantic", "topk"])
def test_shared_encoding_equals_separate_forwards(tiny, mask_source):
    model, tokenizer = tiny
    segmenter = make_segmenter(model, mask_source=mask_source, mask_topk=3).eval()
    torch.manual_seed(1)
    pixel_values = torch.randn(2, 3, 64, 64)
    input_ids, attention_mask = prompt_batch(tokenizer)
    with torch.no_grad():
        shared = segmenter(pixel_values, input_ids, attention_mask)
        separate = segmenter.forward_separately(pixel_values, input_ids, attention_mask)
    assert shared.mask_logits.shape == (2, 2, 3, 32, 32)
    assert shared.presence_logits.shape == (2, 2, 3)
    torch.testing.assert_close(shared.mask_logits, separate.mask_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(shared.presence_logits, separate.presence_logits, atol=1e-4, rtol=1e-4)
    # Different prompts must give different masks, or the equality above would prove nothing.
    assert (shared.mask_logits[0, 0, 0] - shared.mask_logits[0, 1, 0]).abs().max() > 1e-4


def test_shared_encoding_runs_vision_once(tiny):
    model, tokenizer = tiny
    segmenter = make_segmenter(model)
    calls = []
    hook = model.vision_encoder.register_forward_hook(lambda *args: calls.append(1))
    input_ids, attention_mask = prompt_batch(tokenizer)
    segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    hook.remove()
    assert len(calls) == 1  # one call for 2 images × 2 groups × 3 prompts


def test_gradients_reach_vision_text_and_decoder(tiny):
    model, tokenizer = tiny
    segmenter = make_segmenter(model).train()
    input_ids, attention_mask = prompt_batch(tokenizer)
    out = segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    (out.mask_logits.mean() + out.presence_logits.mean()).backward()
    for name in ("vision_encoder", "text_encoder", "detr_decoder", "mask_decoder"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    model.zero_grad()


def test_tiny_config_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 8"):
        tiny_sam3_config(vocab_size=10, hidden_size=12)
    with pytest.raises(ValueError, match="image_size"):
        tiny_sam3_config(vocab_size=10, image_size=100)


def test_wider_vit_keeps_the_decoder_width_and_trains():
    model, tokenizer, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64, vision_hidden_size=48)
    backbone = model.config.vision_config.backbone_config
    assert (backbone.hidden_size, backbone.num_attention_heads) == (48, 3)
    assert model.config.vision_config.fpn_hidden_size == 16  # the neck projects 48 -> 16 for the decoder
    assert model.config.mask_decoder_config.hidden_size == 16
    segmenter = make_segmenter(model).train()
    input_ids, attention_mask = prompt_batch(tokenizer)
    out = segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask)
    assert out.mask_logits.shape[:3] == (2, 2, 3)
    out.mask_logits.mean().backward()
    assert model.vision_encoder.backbone.embeddings.patch_embeddings.projection.weight.grad.shape[0] == 48


def test_patch_4_gives_the_vit_more_tokens_and_the_decoder_the_same_maps(tmp_path):
    outputs = {}
    for patch in (8, 4):
        model, tokenizer, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64, patch_size=patch)
        segmenter = make_segmenter(model).eval()
        input_ids, attention_mask = prompt_batch(tokenizer)
        with torch.no_grad():
            features = model.get_vision_features(pixel_values=torch.randn(1, 3, 64, 64))
            outputs[patch] = segmenter(torch.randn(2, 3, 64, 64), input_ids, attention_mask).mask_logits.shape
        assert features.last_hidden_state.shape[1] == (64 // patch) ** 2  # ViT tokens
        assert [tuple(t.shape[-2:]) for t in features.fpn_hidden_states[:3]] == [(32, 32), (16, 16), (8, 8)]
    assert outputs[4] == outputs[8] == (2, 2, 3, 32, 32)
    model.save_pretrained(tmp_path)  # a stock Sam3Config: the patch-4 model reloads with no custom code
    reloaded = type(model).from_pretrained(tmp_path)
    assert reloaded.config.vision_config.scale_factors == [2.0, 1.0, 0.5, 0.5]


def test_tiny_config_rejects_an_unsupported_patch():
    with pytest.raises(ValueError, match="patch_size must be 4 or 8"):
        tiny_sam3_config(vocab_size=50, image_size=96, patch_size=6)

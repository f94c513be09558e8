"""A word-level tokenizer trained offline on the prompt vocabulary (for the tiny demo model).

CLIP's 49k-token vocabulary would hold most of a ~250k-parameter model's weights; the prompt
vocabulary is ~100 words, so the demo trains its own with the `tokenizers` library.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"]  # ids 0..3, as tiny_sam3_config expects


def train_word_tokenizer(texts: list[str], max_length: int = 32) -> PreTrainedTokenizerFast:
    """Fit a lowercase word-level tokenizer on `texts`; pads to `max_length` by default."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", 1), ("<eos>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def tokenize_prompts(tokenizer, prompts: list[str], max_length: int) -> dict:
    """prompts (P strings) -> input_ids, attention_mask [P, max_length] (padded, truncated)."""
    return tokenizer(
        prompts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )

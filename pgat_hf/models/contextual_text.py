"""A contextual text side for the tiny SAM3: a stock CLIP text encoder distilled from MiniLM, frozen.

The static table (`models.text_side`) gives each WordPiece token one vector, computed with the
token on its own, so pieces of a longer word ("##elial", "##al") and words whose meaning comes
from their neighbours ("white blood cell") reach SAM3 without what MiniLM knows of them in
context. This text side keeps the table as the token embedding and adds CLIP layers trained to
reproduce MiniLM's contextual token states (reduced to the table's 64 columns by the table's own
PCA) and, at the last token, MiniLM's mean-pooled sentence embedding. The layers are stock
`CLIPTextModel` layers, so the checkpoint stays a stock `Sam3Model`; the whole text encoder is
frozen in training.

The weights ship as `text_vectors/minilm_contextual.safetensors` (the encoder without its token
embedding, which is the static table); `distil_contextual_encoder` regenerates them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pgat_hf.models import text_side as static

ENCODER_FILE = static.ASSET_DIR / "minilm_contextual.safetensors"
TOKEN_EMBEDDING = "embeddings.token_embedding.weight"


def _metadata(path: Path = ENCODER_FILE) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def encoder_layers(path: Path = ENCODER_FILE) -> int:
    """How many CLIP layers the shipped encoder has (the tiny model's text_layers must match)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: the contextual text encoder is missing; "
                                "regenerate it with `python -m pgat_hf.models.contextual_text`")
    return int(json.loads(_metadata(path)["config"])["num_hidden_layers"])


def install_contextual_text_side(model, path: Path = ENCODER_FILE) -> None:
    """Load the static table and the distilled layers into a tiny Sam3Model's text encoder; freeze it."""
    from safetensors.torch import load_file

    text_model = model.text_encoder.text_model
    weights = load_file(str(path))
    weights[TOKEN_EMBEDDING] = static.load_table(text_model.embeddings.token_embedding.weight.shape[1])
    distilled = encoder_layers(path)
    extra = len(text_model.encoder.layers) - distilled
    if extra:
        # Trainable layers go on top: the distilled final layer norm moves above them.
        weights = {k: v for k, v in weights.items() if not k.startswith("final_layer_norm.")}
    missing, unexpected = text_model.load_state_dict(weights, strict=False)
    allowed = {n for n, _ in text_model.named_parameters() if n.startswith("final_layer_norm.")
               or any(n.startswith(f"encoder.layers.{i}.") for i in range(distilled, distilled + extra))}
    if set(missing) - allowed or unexpected:
        raise ValueError(f"{path} does not fit the tiny text encoder: missing {missing}, unexpected {unexpected}")
    model.config.pgat_frozen_text_layers = distilled
    freeze_distilled_layers(model)


def freeze_distilled_layers(model) -> None:
    """Token and position embeddings and the distilled layers stay frozen; layers above them train."""
    text_model = model.text_encoder.text_model
    frozen = int(getattr(model.config, "pgat_frozen_text_layers", len(text_model.encoder.layers)))
    text_model.embeddings.requires_grad_(False)
    for layer in text_model.encoder.layers[:frozen]:
        layer.requires_grad_(False)
    if frozen == len(text_model.encoder.layers):
        text_model.final_layer_norm.requires_grad_(False)


def distillation_phrases(vocabulary, words: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` prompts shaped like training prompts: a random training template (T1 or T2, every quality),
    its {syn} filled with 1-3 random whole words of MiniLM's vocabulary or, in 15 % of them, with a
    training synonym. Held-out framings and held-out synonyms are never drawn: the layers learn how
    MiniLM reads words in prompts, not the benchmark's words."""
    import numpy as np

    from pgat_hf.data.vocabulary import TASKS, TRAINING_QUALITIES

    rng = np.random.default_rng(seed)
    templates = [(task, t) for task in TASKS for q in TRAINING_QUALITIES for t in vocabulary.templates[task][q]]
    synonyms = sorted({s for category in vocabulary.categories.values() for s in category.train})
    phrases = []
    for _ in range(count):
        task, template = templates[rng.integers(len(templates))]
        if task == "T1":
            phrases.append(template)
            continue
        if rng.random() < 0.15:
            fill = synonyms[rng.integers(len(synonyms))]
        else:
            fill = " ".join(words[i] for i in rng.integers(len(words), size=int(rng.integers(1, 4))))
        phrases.append(template.replace("{syn}", fill))
    return phrases


@torch.no_grad()
def contextual_targets(minilm, tokenizer, phrases: list[str], projection, max_length: int = 32,
                       batch_size: int = 256, progress: bool = True):
    """MiniLM's reading of each phrase in the table's space: input_ids, attention_mask [N, max_length]
    and targets [N, max_length, dims], each token's contextual state, the last real token ([SEP]) the
    phrase's mean-pooled sentence embedding."""
    import numpy as np
    from tqdm.auto import tqdm

    mean, axes, scale = projection
    batch = tokenizer(phrases, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    targets = np.zeros((len(phrases), max_length, axes.shape[0]), np.float32)
    for start in tqdm(range(0, len(phrases), batch_size), desc="MiniLM targets", disable=not progress):
        mask = attention_mask[start:start + batch_size]
        width = int(mask.sum(1).max())
        hidden = minilm(input_ids=input_ids[start:start + batch_size, :width],
                        attention_mask=mask[:, :width]).last_hidden_state.double().numpy()  # [b, width, 384]
        keep = mask[:, :width].numpy()[..., None]
        pooled = (hidden * keep).sum(1) / keep.sum(1)
        reduced = (hidden - mean) @ axes.T * scale  # [b, width, dims]
        last = mask.sum(1).numpy() - 1
        reduced[np.arange(len(last)), last] = (pooled - mean[0]) @ axes.T * scale
        targets[start:start + len(last), :width] = reduced * keep
    return input_ids, attention_mask, torch.from_numpy(targets)


def distil_contextual_encoder(layers: int = 2, num_phrases: int = 60000, steps: int = 3000, batch_size: int = 256,
                              learning_rate: float = 2e-3, seed: int = 0, progress: bool = True) -> dict:
    """MiniLM -> the tiny text encoder's weights: {name: tensor} without the token embedding, and its config.

    A stock CLIPTextModel (width 64, 4 heads, causal, the static table as its frozen token embedding)
    learns by mean squared error on real tokens to give MiniLM's targets (`contextual_targets`) for
    `distillation_phrases`. One thread, fixed seeds: the same weights on the same CPU and torch.
    """
    from transformers import AutoModel, CLIPTextConfig, CLIPTextModel

    from pgat_hf.data.vocabulary import default_vocabulary

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        minilm = AutoModel.from_pretrained(static.minilm_dir(), use_safetensors=True).eval()
        tokenizer = static.load_tokenizer()
        projection = static.pca_projection(static.token_sentence_embeddings(minilm, progress=progress))
        words = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and len(w) >= 3)
        phrases = distillation_phrases(default_vocabulary(), words, num_phrases, seed)
        input_ids, attention_mask, targets = contextual_targets(minilm, tokenizer, phrases, projection,
                                                                progress=progress)
        config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=static.TABLE_DIMS,
                                intermediate_size=4 * static.TABLE_DIMS, num_hidden_layers=layers,
                                num_attention_heads=static.TABLE_DIMS // 16, max_position_embeddings=32,
                                pad_token_id=static.PAD_ID, bos_token_id=static.CLS_ID, eos_token_id=static.SEP_ID)
        torch.manual_seed(seed)
        student = CLIPTextModel(config)
        embedding = student.get_input_embeddings()
        with torch.no_grad():
            embedding.weight.copy_(static.load_table(static.TABLE_DIMS))
        embedding.weight.requires_grad_(False)
        train_student(student, input_ids, attention_mask, targets, steps, batch_size, learning_rate, seed, progress)
    finally:
        torch.set_num_threads(threads)
    weights = {name.removeprefix("text_model."): tensor.detach().contiguous()
               for name, tensor in student.state_dict().items() if not name.endswith(TOKEN_EMBEDDING)}
    return {"weights": weights, "config": {"num_hidden_layers": layers, "num_phrases": num_phrases, "steps": steps,
                                           "seed": seed}}


def train_student(student, input_ids, attention_mask, targets, steps: int, batch_size: int, learning_rate: float,
                  seed: int, progress: bool = True) -> None:
    """AdamW with a one-cycle schedule on random batches; loss: MSE over real tokens' [dims] states."""
    from tqdm.auto import tqdm

    parameters = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(seed)
    width = int(attention_mask.sum(1).max())
    bar = tqdm(range(steps), desc="distil text layers", disable=not progress)
    for _ in bar:
        rows = torch.randint(0, len(input_ids), (batch_size,), generator=generator)
        mask = attention_mask[rows, :width]
        hidden = student(input_ids=input_ids[rows, :width], attention_mask=mask).last_hidden_state
        keep = mask.unsqueeze(-1).float()
        loss = (((hidden - targets[rows, :width]) ** 2) * keep).sum() / (keep.sum() * hidden.shape[-1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(mse=f"{loss.item():.4f}")


def save_encoder(distilled: dict, path: Path = ENCODER_FILE) -> None:
    """Write the layers as safetensors through a temporary name (never half-written)."""
    import os

    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    metadata = {"config": json.dumps(distilled["config"]), "source": "sentence-transformers/all-MiniLM-L6-v2",
                "weights_sha256": static.MINILM_WEIGHTS_SHA256}
    save_file(distilled["weights"], str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """python -m pgat_hf.models.contextual_text [--out FILE]: regenerate the shipped contextual layers."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default=str(ENCODER_FILE))
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--num_phrases", type=int, default=60000)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args(argv)
    distilled = distil_contextual_encoder(layers=args.layers, num_phrases=args.num_phrases, steps=args.steps)
    save_encoder(distilled, Path(args.out))
    print(f"wrote {args.out} (sha256 {static.sha256_of(args.out)})")


if __name__ == "__main__":
    main()

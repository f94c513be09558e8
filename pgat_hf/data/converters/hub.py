"""Pushing a built dataset folder to the Hugging Face Hub as a dataset repo."""

from __future__ import annotations

from pathlib import Path


def push_dataset_folder(out_dir, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (if needed) the dataset repo ``repo_id`` and upload the folder in one commit.

    Hidden files (leftover ``.config.tmp-*`` folders of an interrupted build) are not uploaded.
    Returns the commit URL.
    """
    from huggingface_hub import HfApi

    folder = Path(out_dir)
    if not (folder / "README.md").exists():
        raise ValueError(f"{folder}: no README.md; build the dataset before pushing it")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        ignore_patterns=[".*", ".*/**", "**/.*"],
        commit_message="Upload prompt-group dataset (pgat_hf dataset_scripts/build.py)",
    )
    return str(getattr(commit, "commit_url", commit))

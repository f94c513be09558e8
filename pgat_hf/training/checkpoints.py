"""Crash-safe checkpoints: a `checkpoint-N` folder counts only once it is marked complete.

Trainer writes a checkpoint's files one after another (weights, optimizer, scheduler, RNG state,
trainer_state.json); a kill in between leaves a folder that looks like a checkpoint and is not.
PGATTrainer writes `COMPLETE_MARKER` into the folder after every file of it is on disk (and, in a
multi-process run, after every process has finished its part), through a temporary name and a
rename, so the marker itself is never half-written. Resuming with `last` / `auto` picks the newest
marked folder; unmarked ones are removed first, so Trainer never rotates or resumes them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

COMPLETE_MARKER = "pgat_checkpoint_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_complete_marker(folder: str | os.PathLike, step: int) -> None:
    """Mark `folder` complete: write the marker to a temporary name, flush it to disk, rename."""
    folder = Path(folder)
    tmp = folder / f".{COMPLETE_MARKER}.tmp"
    with open(tmp, "w") as handle:
        json.dump({"global_step": int(step), "files": sorted(p.name for p in folder.iterdir() if p != tmp)}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / COMPLETE_MARKER)


def is_complete(folder: str | os.PathLike) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


def checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """`checkpoint-N` folders of `output_dir`, oldest step first (none if the folder is absent)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint of `output_dir` that is marked complete, or None."""
    complete = [p for p in checkpoint_folders(output_dir) if is_complete(p)]
    return str(complete[-1]) if complete else None


def remove_incomplete_checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """Delete checkpoint folders a kill left unfinished; returns their paths."""
    removed = []
    for folder in checkpoint_folders(output_dir):
        if not is_complete(folder):
            shutil.rmtree(folder)
            removed.append(str(folder))
    return removed


def resolve_resume(resume: str | None, output_dir: str | os.PathLike) -> str | None:
    """--resume_from_checkpoint -> a complete checkpoint folder, or None to start afresh.

    `last`, `auto` and `true` mean the newest complete checkpoint in `output_dir` (None when there
    is none). An explicit folder must be complete.
    """
    if resume in (None, "", "false", "False"):
        return None
    if resume in ("auto", "last", "true", "True"):
        for folder in remove_incomplete_checkpoints(output_dir):
            print(f"removed {folder}: a kill interrupted its writing (no {COMPLETE_MARKER})", flush=True)
        return latest_complete_checkpoint(output_dir)
    if not Path(resume).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {resume}: no such folder")
    if not is_complete(resume):
        raise ValueError(f"--resume_from_checkpoint {resume}: the checkpoint is incomplete (no {COMPLETE_MARKER}; "
                         f"its writing was interrupted); use `last` for the newest complete one")
    return str(resume)

"""`pgat-hf card`: (re)generate the model card of a training output folder (hub/model_card.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys

# The JSON files the card reads from the folder (hub/model_card.py); each is optional but config.json,
# or adapter_config.json in a LoRA adapter folder (lora_save_merged=false).
CARD_JSON_FILES = ("config.json", "adapter_config.json", "pgat_training_args.json", "pgat_run.json",
                   "robustness_report.json")


def folder_error(model: str) -> str | None:
    """Why the card cannot be read from `model`, naming the folder or file; None if it can."""
    if not os.path.isdir(model):
        return f"no folder {model!r}" if not os.path.exists(model) else f"{model!r} is a file, not a training folder"
    for name in CARD_JSON_FILES:
        path = os.path.join(model, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                json.load(handle)
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            return f"{path} is not valid JSON ({error}); rewrite it or move it aside"
        except OSError as error:
            return f"{path} could not be read: {error}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgat-hf card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="training output folder (checkpoint or LoRA adapter at its root)")
    parser.add_argument("--repo-id", default=None, help="Hub repo id the card's usage snippets should name")
    parser.add_argument("--out", default=None, help="where to write the card (default MODEL/README.md)")
    parser.add_argument("--template", default=None, help="card template (default: pgat_hf/hub/templates/model_card.md)")
    parser.add_argument("--he-figure", action="store_true",
                        help="first draw the pipeline's masks on stardist's real H&E tile (needs stardist)")
    args = parser.parse_args(argv)
    error = folder_error(args.model)
    if error is not None:
        print(f"pgat-hf card: error: {error}", file=sys.stderr)
        return 2
    from pgat_hf.hub.model_card import write_model_card

    if args.he_figure:
        from pgat_hf.hub.showcase import render_he_figure

        print(render_he_figure(args.model))
    try:
        print(write_model_card(args.model, repo_id=args.repo_id, out=args.out, template_path=args.template))
    except FileNotFoundError as error:  # not a checkpoint folder, a missing --template; the message names it
        print(f"pgat-hf card: error: {error}", file=sys.stderr)
        return 2
    return 0

"""`pgat-hf card`: (re)generate the model card of a training output folder (hub/model_card.py)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgat-hf card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="training output folder (checkpoint at its root)")
    parser.add_argument("--repo-id", default=None, help="Hub repo id the card's usage snippets should name")
    parser.add_argument("--out", default=None, help="where to write the card (default MODEL/README.md)")
    parser.add_argument("--template", default=None, help="card template (default: pgat_hf/hub/templates/model_card.md)")
    parser.add_argument("--he-figure", action="store_true",
                        help="first draw the pipeline's masks on stardist's real H&E tile (needs stardist)")
    args = parser.parse_args(argv)
    from pgat_hf.hub.model_card import write_model_card

    if args.he_figure:
        from pgat_hf.hub.showcase import render_he_figure

        print(render_he_figure(args.model))
    print(write_model_card(args.model, repo_id=args.repo_id, out=args.out, template_path=args.template))
    return 0

"""`pgat-hf app`: serve the prompt-robustness explorer (hub/app.py) on a local port.

    pgat-hf app [--model DIR_OR_REPO] [--compare DIR_OR_REPO] [--port N] [--host 127.0.0.1]

With no --model it serves the demo checkpoint (outputs/pgat-demo) when one exists, and says how
to train one when none does.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgat-hf app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, metavar="DIR_OR_REPO",
                        help="checkpoint folder or Hub repo (default: the demo's outputs/pgat-demo when it exists)")
    parser.add_argument("--compare", default=None, metavar="DIR_OR_REPO",
                        help="a second checkpoint shown side by side, e.g. the plain fine-tuned baseline")
    parser.add_argument("--port", type=int, default=7860, help="local port")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    args = parser.parse_args(argv)
    try:
        from pgat_hf.hub import app as explorer
    except ImportError as error:
        if "gradio" not in str(error):
            raise
        print("pgat-hf app needs Gradio: pip install -e '.[app]'", file=sys.stderr)
        return 2
    models = [args.model] if args.model else explorer.demo_models()
    if not models:
        print("pgat-hf app: " + explorer.NO_MODEL_TEXT.replace("**", ""), file=sys.stderr)
        return 2
    explorer.launch(models + ([args.compare] if args.compare else []), port=args.port, host=args.host)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`pgat-hf push`: upload a checkpoint folder with its card and plots to the Hub (hub/push.py)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pgat-hf push", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="training output folder (checkpoint at its root)")
    parser.add_argument("--repo", required=True, help="Hub repo id, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--no-remote-code", action="store_true", help="do not upload the pipeline code")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    args = parser.parse_args(argv)
    from pgat_hf.hub.push import push_to_hub

    print(push_to_hub(args.model, args.repo, private=args.private, remote_code=not args.no_remote_code,
                      commit_message=args.commit_message, token=args.token))
    return 0

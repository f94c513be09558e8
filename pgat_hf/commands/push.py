"""`pgat-hf push`: upload a checkpoint folder with its card and plots to the Hub (hub/push.py).

A folder that cannot be published, a bad repo id, offline mode and the Hub refusing the request
(401, 403, 404) end the command with one line, `pgat-hf push: error: ...`, and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

# What a refused request most likely means, by HTTP status, for someone creating and writing a repo.
HTTP_HINTS = {
    401: "the Hub did not accept the token: log in with `hf auth login` or pass --token",
    403: "the token may not create or write {repo}: use a token with write access to its namespace",
    404: "the Hub found no {repo} nor a namespace it may be created in: check --repo",
}


def error_line(error: Exception, repo: str) -> str | None:
    """The one-line message for an error push_to_hub raises (the Hub client's or the folder check's),
    or None for one this command does not explain (its traceback is then shown)."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(error, HFValidationError):
        return f"--repo {repo!r} is not a Hub repo id (ORG/NAME): {error}"
    if isinstance(error, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1): unset it to push"
    if isinstance(error, LocalTokenNotFoundError):
        return HTTP_HINTS[401]
    if isinstance(error, HfHubHTTPError) and getattr(error, "response", None) is not None:
        status = error.response.status_code
        hint = HTTP_HINTS.get(status, "the request failed").format(repo=repo)
        detail = f" ({error.server_message})" if error.server_message else ""
        return f"HTTP {status} from the Hub: {hint}{detail}"
    if isinstance(error, (FileNotFoundError, ValueError)):  # stage_upload: not a checkpoint folder, pickles
        return str(error)
    return None


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

    try:
        url = push_to_hub(args.model, args.repo, private=args.private, remote_code=not args.no_remote_code,
                          commit_message=args.commit_message, token=args.token)
    except Exception as error:
        line = error_line(error, args.repo)
        if line is None:
            raise
        print(f"pgat-hf push: error: {line}", file=sys.stderr)
        return 2
    print(url)
    return 0

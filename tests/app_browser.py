"""Drive the prompt-robustness explorer in headless Chromium (Debian's /usr/bin/chromium, via Playwright).

Used by tests/test_app.py, and to take the screenshot in docs/app.md:

    python tests/app_browser.py --model runs/robustness/pgat/seed0 --compare runs/robustness/baseline/seed0 \
        --tile-seed 202 --phrasings "inflammatory nuclei" "segment all lymphocyte nuclei" \
        "highlight the lymphoid nuclei" --out docs/images/app_explorer.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# As the machine notes say: without the background-networking flags Chromium keeps dialling out
# of this closed network; no sandbox because tests run as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_app(models: list[str], cwd: str | Path, timeout: float = 240.0):
    """`pgat-hf app` in a child process on a free port; yields its URL once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "pgat_hf.commands.app", "--model", models[0], "--port", str(port)]
    if len(models) > 1:
        argv += ["--compare", models[1]]
    server = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    raise RuntimeError(f"the app did not start on {url}:\n{server.communicate()[0]}")
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def drive_explorer(url: str, tile: str | Path, phrasings: list[str], screenshot: str | Path,
                   panels: int = 1) -> dict:
    """Upload a tile, type the phrasings, press the button, wait for every panel's masks and heat map.

    Returns the page's texts: {"summaries": [...], "captions": [...], "comparison": str}.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1900})
        page.goto(url, wait_until="networkidle")
        page.set_input_files("#tile input[type=file]", str(tile))
        page.locator("#tile img").first.wait_for(timeout=60_000)  # the upload's preview is shown
        page.locator("#phrasings textarea").fill("\n".join(phrasings))
        page.locator("#run").click()
        for index in range(panels):
            page.wait_for_function(f"document.querySelectorAll('#masks-{index} img').length >= {len(phrasings)}",
                                   timeout=300_000)
            page.locator(f"#agreement-{index} img").wait_for(timeout=60_000)
        texts = {"summaries": [page.locator(f"#summary-{i}").inner_text() for i in range(panels)],
                 "captions": [page.locator(f"#masks-{i}").inner_text() for i in range(panels)],
                 "comparison": page.locator("#comparison").inner_text()}
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--compare", default=None)
    parser.add_argument("--tile-seed", type=int, default=202, help="the synthetic generator's seed for the tile")
    parser.add_argument("--phrasings", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    from pgat_hf.data.synthetic import generate_tile

    tile = Path(args.out).with_suffix(".tile.png")
    Image.fromarray(generate_tile(np.random.default_rng(args.tile_seed))[0]).save(tile)
    models = [str(Path(args.model).resolve())] + ([str(Path(args.compare).resolve())] if args.compare else [])
    try:
        with serve_app(models, cwd=Path.cwd()) as url:
            texts = drive_explorer(url, tile, args.phrasings, args.out, panels=len(models))
    finally:
        tile.unlink(missing_ok=True)
    print("\n".join(texts["summaries"] + [texts["comparison"]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

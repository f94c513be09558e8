"""Every relative link and image in the README and docs/ points at a file of the repository."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_targets(page: Path) -> list[tuple[str, Path]]:
    targets = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and in-page anchors
        targets.append((target, (page.parent / target.split("#")[0]).resolve()))
    return targets


def test_every_docs_link_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(REPO)} -> {target}" for page in pages for target, path in relative_targets(page)
               if not path.exists()]
    assert missing == []


def test_the_link_reader_sees_links_and_skips_addresses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![b](images/b.png) [c](https://x.org/y) [d](#top) [e](f.md#part)")
    assert [target for target, _ in relative_targets(page)] == ["docs/a.md", "images/b.png", "f.md#part"]

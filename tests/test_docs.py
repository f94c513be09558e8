"""Every relative link and image in the README and docs/ points at a file of the repository, and
every `#anchor` into a Markdown page names one of its headings."""

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


def heading_anchors(page: Path) -> set[str]:
    """GitHub's anchors: a heading lowercased, punctuation but '-' and '_' dropped, spaces as '-'."""
    anchors = set()
    for line in page.read_text().splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower().replace("`", ""))
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_docs_link_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(REPO)} -> {target}" for page in pages for target, path in relative_targets(page)
               if not path.exists()]
    assert missing == []


def test_every_anchor_into_a_page_names_a_heading():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = [f"{page.relative_to(REPO)} -> {target}" for page in pages for target, path in relative_targets(page)
              if "#" in target and path.suffix == ".md" and target.split("#", 1)[1] not in heading_anchors(path)]
    assert broken == []


def test_the_link_reader_sees_links_and_skips_addresses(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/a.md) ![b](images/b.png) [c](https://x.org/y) [d](#top) [e](f.md#part)")
    assert [target for target, _ in relative_targets(page)] == ["docs/a.md", "images/b.png", "f.md#part"]


def test_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Results (3,000 steps, seeds 0 to 4)\n## 10.1 The text side (`pgat_hf/models/text_side.py`)\n"
                    "text # not a heading\n")
    assert heading_anchors(page) == {"results-3000-steps-seeds-0-to-4",
                                     "101-the-text-side-pgat_hfmodelstext_sidepy"}

"""The repository explains itself: every relative link in README.md and docs/ resolves inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # markdown [text](target)


def relative_links(markdown: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(markdown.read_text())
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def broken_or_outside(root: Path) -> list[str]:
    out = []
    for page in sorted([root / "README.md", *(root / "docs").glob("*.md")]):
        for target in relative_links(page):
            resolved = (page.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(root):
                out.append(f"{page.relative_to(root)}: {target} points outside the repository")
            elif not resolved.exists():
                out.append(f"{page.relative_to(root)}: {target} does not exist")
    return out


def test_docs_links_stay_inside_the_repository():
    assert broken_or_outside(REPO) == []


def test_a_link_outside_is_caught(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "here.md").write_text("ok")
    (tmp_path / "README.md").write_text(
        "[a](docs/here.md) [b](../shared/ARCHITECTURE.md) [c](docs/gone.md) [d](https://x.org/y)"
    )
    assert broken_or_outside(tmp_path) == [
        "README.md: ../shared/ARCHITECTURE.md points outside the repository",
        "README.md: docs/gone.md does not exist",
    ]


def test_the_architecture_page_states_the_invariants():
    text = (REPO / "docs" / "architecture.md").read_text().lower()
    for topic in ("merge invariant", "offsets", "block", "fail closed", "one metric definition", "layer"):
        assert topic in text, topic

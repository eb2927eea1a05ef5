"""The repository owns its facts: every documentation link it cites resolves, and nothing cites a file a
reader of the kit does not have."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for pattern in ("pspl_nb/**/*.py", "tests/*.py", "bench/*.py", "notebooks/*.ipynb", "*.md", "docs/*.md",
                             "data/README.md", "Makefile", "postBuild", ".ci/run")
           for p in ROOT.glob(pattern)]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def test_every_cited_docs_anchor_exists():
    cited = {(src, m.group(1), m.group(2)) for src in SOURCES
             for m in re.finditer(r"docs/([a-z_]+\.md)#([a-z0-9-]+)", src.read_text())}
    assert len(cited) >= 10  # the code does cite the pages
    missing = [(s.name, page, a) for s, page, a in cited if a not in anchors(ROOT / "docs" / page)]
    assert not missing


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "data/README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_of_a_page_resolve(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_nothing_cites_the_teams_private_notes():
    private = ("REFERENCE" + ".md", "REFERENCE" + " section", "REFERENCE" + " sec", "../" + "shared")
    offenders = [(p.name, word) for p in SOURCES for word in private if word in p.read_text()]
    assert not offenders

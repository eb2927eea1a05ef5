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


def message_templates() -> list[str]:
    """Every message the code can print, as a template: each string literal of the package (adjacent literals
    and f-strings joined, every ``{...}`` as ``{}``), the ``RunConfig.<field>={}: <why>`` lines ``validate``
    builds with ``bad(field, why)``, and the Makefile's lines."""
    import ast

    def text(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        return None

    templates = (ROOT / "Makefile").read_text().replace("$(VENV)", ".venv").splitlines()
    for path in (ROOT / "pspl_nb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if text(node) is not None:
                templates.append(text(node))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "bad" and len(node.args) == 2:
                field, why = text(node.args[0]), text(node.args[1])
                if field and why:
                    templates.append(f"RunConfig.{field}={{}}: {why}")
    return templates


def test_every_message_of_the_troubleshooting_table_is_one_the_code_prints():
    """Each message of "When something goes wrong" (``<...>`` standing for names and numbers) matches one
    message template of the code, its words in order."""
    page = (ROOT / "docs/running_anywhere.md").read_text()
    table = page.split("## When something goes wrong", 1)[1].split("\n## ", 1)[0]
    messages = re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)
    assert len(messages) >= 25
    templates = message_templates()
    missing = []
    for message in messages:
        pieces = [p.strip(" :;,") for p in re.split(r"<[^>]*>", message)]
        pattern = re.compile(".*?".join(re.escape(p) for p in pieces if p))
        if not any(pattern.search(t) for t in templates):
            missing.append(message)
    assert not missing


def test_readme_and_results_hold_exactly_what_the_committed_grids_generate():
    """Every number README and docs/results.md print about the kit's own runs is generated from the committed
    CSVs (``python -m pspl_nb.summary --write``), never typed: regenerating gives the same text."""
    from pspl_nb import summary

    for rel, text in summary.generated().items():
        assert summary.block(ROOT / rel, summary.BLOCKS[rel]) == text, f"{rel} differs from `python -m pspl_nb.summary`"

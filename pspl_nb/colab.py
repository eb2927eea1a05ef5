"""Opening a notebook in Colab (or any kernel without the kit): the badge under each notebook's title and the
first code cell, which installs the kit only when it is missing.

``python -m pspl_nb.colab [NOTEBOOK ...]`` writes both into the notebooks (all by default) from the
constants below; tests/test_colab.py checks every notebook carries them as written here and runs the cell in
a fresh virtual environment. Change ``REPOSITORY`` once the repository has its public home, then run the
command again.
"""
import argparse
import json
from pathlib import Path

REPOSITORY = "OWNER/pspl-nb"  # owner/name on GitHub: where the badges point and what the cell clones
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
INSTALL_ID = "install-kit"

# The cell runs before anything imports the kit. Where the kit is importable it does nothing, so the notebook
# runs unchanged under `make reproduce`, the tests and JupyterLab. Elsewhere it clones the repository (its
# notebooks, the committed reference grids and data/README), installs the kit into this kernel's Python with
# the version ranges of pyproject.toml (a service's own torch and Jupyter are kept when they fit), and points
# data and results into the clone. PSPL_CLONE names an existing clone; PSPL_INSTALL what pip installs (a
# wheel, say) instead of the clone itself.
INSTALL_SOURCE = f"""\
# Colab and other kernels without the kit: fetch the repository and install the kit (elsewhere: nothing).
import importlib.util
if importlib.util.find_spec("pspl_nb") is None:
    import os, pathlib, subprocess, sys
    clone = pathlib.Path(os.environ.get("PSPL_CLONE", "pspl-nb")).resolve()
    if not clone.exists():
        subprocess.run(["git", "clone", "--depth", "1", "https://github.com/{REPOSITORY}", str(clone)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", os.environ.get("PSPL_INSTALL", str(clone))],
                   check=True)
    for name, folder in (("PSPL_DATA", "data"), ("PSPL_RESULTS", "results"), ("PSPL_REFERENCE", "results/reference")):
        os.environ.setdefault(name, str(clone / folder))
    importlib.invalidate_caches()"""


def colab_url(name: str) -> str:
    """Colab's address of notebook ``name`` (e.g. "02_pspl_explained") on ``BRANCH`` of ``REPOSITORY``."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{name}.ipynb"


def badge(name: str) -> str:
    """The Markdown badge that opens notebook ``name`` in Colab."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(name)})"


def _lines(text: str) -> list[str]:
    """Notebook JSON stores a cell's source as lines that keep their newline, the last without one."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def apply(path: Path) -> bool:
    """Put the badge on the line after the title of notebook ``path`` and the install cell before its first code
    cell (replacing older copies of either). Returns whether the file changed."""
    path = Path(path)
    text = path.read_text()
    nb = json.loads(text)
    title = nb["cells"][0]
    head, *rest = "".join(title["source"]).split("\n")
    rest = [line for line in rest if BADGE_IMAGE not in line]
    while rest and not rest[0].strip():
        rest.pop(0)
    title["source"] = _lines("\n".join([head, "", badge(path.stem), ""] + rest))
    cell = dict(cell_type="code", execution_count=None, id=INSTALL_ID, metadata={}, outputs=[],
                source=_lines(INSTALL_SOURCE))
    cells = [c for c in nb["cells"] if c.get("id") != INSTALL_ID]
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    nb["cells"] = cells[:first_code] + [cell] + cells[first_code:]
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new)
    return new != text


def main(argv=None) -> None:
    from pspl_nb.reproduce import notebooks

    p = argparse.ArgumentParser(prog="python -m pspl_nb.colab", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", type=Path, help="notebooks (default: every numbered notebook)")
    a = p.parse_args(argv)
    for path in a.paths or notebooks():
        print(f"{path.name}: {'updated' if apply(path) else 'already up to date'}")


if __name__ == "__main__":
    main()

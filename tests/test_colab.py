"""Opening the notebooks in Colab: every notebook carries the badge and the install cell that ``pspl_nb.colab``
writes, and the cell really installs the kit into a kernel that lacks it (a fresh virtual environment with the
notebooks' libraries but not the kit, the kit coming from a wheel built here)."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pspl_nb import colab
from pspl_nb.reproduce import notebooks

ROOT = Path(__file__).resolve().parents[1]
NOT_YET = set()  # notebooks without the badge and install cell yet (strict xfail: none now)


def cells(path: Path) -> list:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="not yet applied"))
                                  if p.stem in NOT_YET else p for p in notebooks()], ids=lambda p: p.stem)
def test_every_notebook_has_the_badge_and_the_install_cell(path):
    title = "".join(cells(path)[0]["source"]).split("\n")
    assert title[2] == colab.badge(path.stem)  # under the title line and a blank line
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert code[0]["id"] == colab.INSTALL_ID and "".join(code[0]["source"]) == colab.INSTALL_SOURCE
    assert colab.colab_url(path.stem).endswith(f"/notebooks/{path.name}")


def test_apply_adds_both_once_and_keeps_everything_else(tmp_path):
    source = ROOT / "notebooks" / "00_overview.ipynb"
    copy = tmp_path / source.name
    nb = json.loads(source.read_text())
    nb["cells"] = [c for c in nb["cells"] if c.get("id") != colab.INSTALL_ID]
    nb["cells"][0]["source"] = [line for line in nb["cells"][0]["source"] if colab.BADGE_IMAGE not in line]
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    assert colab.apply(copy) is True
    assert copy.read_text() == source.read_text()  # what the committed notebook holds
    assert colab.apply(copy) is False  # idempotent


def test_the_install_cell_does_nothing_where_the_kit_is_installed(monkeypatch):
    monkeypatch.setenv("PSPL_INSTALL", "/nonexistent.whl")  # would fail loudly if pip ran
    monkeypatch.setenv("PSPL_CLONE", "/nonexistent-clone")  # would fail loudly if git ran
    exec(colab.INSTALL_SOURCE, {})


def notebook_libraries(folder: Path) -> Path:
    """A folder of links to every package of this environment except the kit and its metadata (pip included: the
    fresh environment has none of its own)."""
    site = Path(sysconfig.get_paths()["purelib"])
    folder.mkdir()
    skip = ("pspl_nb", "__editable__")
    for entry in site.iterdir():
        if not entry.name.startswith(skip) and entry.suffix != ".pth":
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.notebook
@pytest.mark.xdist_group("kernels")
def test_the_install_cell_installs_the_kit_from_a_wheel_in_a_fresh_environment(tmp_path, data_root):
    # the wheel, built from a copy of the package so that no build files land in the repository
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pspl_nb", src / "pspl_nb", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, env=dict(os.environ, PIP_NO_INDEX="1"))
    wheel = next((tmp_path / "dist").glob("pspl_nb-*.whl"))
    # a fresh environment: the notebooks' libraries (and pip) through one .pth line, no kit
    env_dir = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
    (fresh_site / "notebook_libraries.pth").write_text(str(notebook_libraries(tmp_path / "libs")) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER"))}
    env.update(PSPL_INSTALL=str(wheel), PSPL_CLONE=str(ROOT), PSPL_DATA=str(data_root),
               PSPL_RESULTS=str(tmp_path / "results"), CI="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter"), JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter"),
               MPLCONFIGDIR=str(tmp_path / "mpl"), IPYTHONDIR=str(tmp_path / "ipython"))
    missing = subprocess.run([str(python), "-c", "import pspl_nb"], env=env, capture_output=True, cwd=tmp_path)
    assert missing.returncode != 0, "the fresh environment must start without the kit"
    # notebook 00, executed by the fresh environment's own kernel from a folder outside the repository
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_overview.ipynb", work)
    run = subprocess.run([str(python), "-m", "papermill", "00_overview.ipynb", "out.ipynb", "-p", "PROFILE", "smoke",
                          "-k", "python3", "--no-progress-bar", "--execution-timeout", "300"],
                         env=env, cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    executed = json.loads((work / "out.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    where = subprocess.run([str(python), "-c", "import pspl_nb; print(pspl_nb.__file__)"], env=env, cwd=tmp_path,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(env_dir)), where  # installed into the fresh environment by the notebook's cell


def test_readme_links_every_notebook_its_executed_copy_and_its_colab_page():
    readme = (ROOT / "README.md").read_text()
    for path in notebooks():
        assert f"(notebooks/{path.name})" in readme
        assert f"(notebooks/executed/{path.name})" in readme
        assert f"({colab.colab_url(path.stem)})" in readme

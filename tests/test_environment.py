"""The dependency files say what the code needs and agree with each other: pyproject.toml (what the kit, its
tests and its benchmarks import, and the Python they need), constraints.txt (exact pins, the ones installed),
environment.yml (conda route)."""
import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
# Import names whose distribution is called otherwise.
DISTRIBUTION = {"PIL": "pillow", "skimage": "scikit-image", "yaml": "pyyaml"}
# Declared and needed, but never imported by name: what runs the notebooks, and pytest's plugins.
RUN_WITHOUT_IMPORT = {"ipykernel", "jupyterlab", "nbclient", "pytest-xdist", "pytest-timeout"}


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def declared(*groups: str) -> set[str]:
    """Distribution names of ``dependencies`` and of the named extras."""
    return {name_of(r) for g in groups for r in (PROJECT["dependencies"] if g == "dependencies" else EXTRAS[g])}


def imported(folder: str) -> set[str]:
    """Distribution names of the third-party modules the files under ``folder`` import (statements, and
    ``pytest.importorskip("...")``), read with ``ast``: nothing is executed."""
    local = {"pspl_nb", "bench", "tests"}
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module)
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip"
                  and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    tops = {name.split(".")[0] for name in found} - local - set(sys.stdlib_module_names)
    return {DISTRIBUTION.get(top, top).lower().replace("_", "-") for top in tops}


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {name_of(line): line.split("==")[1].strip() for line in lines if "==" in line}


def conda_pip_section() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev,slurm]" in pip, "environment.yml must install the kit itself, as make env does"
    return {name_of(r): r.split("==")[1] for r in pip if "==" in r}


def test_every_import_is_declared_and_every_declaration_is_needed():
    kit, tests, bench = imported("pspl_nb"), imported("tests"), imported("bench")
    assert kit <= declared("dependencies", "slurm"), "the kit imports undeclared packages"
    assert declared("slurm") <= kit
    assert declared("dependencies") <= kit | RUN_WITHOUT_IMPORT, "declared, but the kit neither imports nor runs it"
    assert tests <= declared("dependencies", "slurm", "dev"), "the tests import undeclared packages"
    assert bench <= declared("dependencies", "dev", "bench"), "the benchmarks import undeclared packages"
    assert declared("dev") <= tests | bench | RUN_WITHOUT_IMPORT
    assert declared("bench") <= bench


def test_the_scan_sees_what_a_file_imports(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("import os, PIL.Image\nfrom skimage import data\nfrom . import b\n"
                                           "def f():\n    import jupyter_client\n    pytest.importorskip('yaml')\n")
    assert imported("pkg") == {"pillow", "scikit-image", "jupyter-client", "pyyaml"}


def test_environment_yml_lists_the_pyproject_packages_with_the_constraint_pins():
    conda = conda_pip_section()
    assert set(conda) == declared("dependencies", "dev", "slurm")
    locked = pins()
    assert {k: locked[k] for k in conda} == conda


def test_every_dependency_is_pinned_and_the_pins_are_what_is_installed():
    locked = pins()
    assert declared("dependencies", "dev", "slurm", "bench") <= set(locked)
    for name in sorted(declared("dependencies", "dev", "slurm")):
        installed = importlib.metadata.version(name).split("+")[0]  # torch's local tag: +cpu, +cu128
        assert installed == locked[name], f"{name} {installed} is installed, constraints.txt pins {locked[name]}"


def test_every_python_the_kit_admits_can_install_its_pins():
    """requires-python's floor meets the Requires-Python of every declared package at its pin (numpy 2.4,
    pandas 3.1, scipy 1.17 and IPython 9 need 3.11), and environment.yml builds exactly that floor."""
    floor = re.fullmatch(r">=\s*(\d+\.\d+)", PROJECT["requires-python"].strip()).group(1)
    too_new = {}
    for name in declared("dependencies", "dev", "slurm"):
        needs = importlib.metadata.metadata(name).get("Requires-Python")
        if needs and f"{floor}.0" not in SpecifierSet(needs):
            too_new[name] = needs
    assert not too_new, f"requires-python >={floor} admits a Python these pins refuse: {too_new}"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python={floor}" in env["dependencies"]


@pytest.mark.parametrize("floor, ok", [("3.10", False), ("3.11", True)])
def test_the_python_check_refuses_a_floor_the_pins_cannot_meet(floor, ok):
    numpy_needs = importlib.metadata.metadata("numpy")["Requires-Python"]
    assert (f"{floor}.0" in SpecifierSet(numpy_needs)) is ok

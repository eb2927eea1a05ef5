"""The three dependency files agree: pyproject (what the kit imports), constraints.txt (exact pins),
environment.yml (conda route)."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {name_of(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {name_of(line): line.split("==")[1].strip() for line in lines if "==" in line}


def conda_pip_section() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev]" in pip, "environment.yml must install the kit itself"
    return {name_of(r): r.split("==")[1] for r in pip if "==" in r}


def test_environment_yml_lists_the_pyproject_packages_with_the_constraint_pins():
    conda = conda_pip_section()
    assert set(conda) == pyproject_packages()
    locked = pins()
    assert {k: locked[k] for k in conda} == conda


def test_every_dependency_is_pinned_and_torch_is_the_cpu_wheel_version():
    locked = pins()
    assert pyproject_packages() <= set(locked)
    assert locked["torch"] == "2.13.0"


def test_environment_yml_python_matches_pyproject_floor():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"] == ">=3.10"

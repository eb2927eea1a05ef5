"""Every notebook runs headless in the smoke profile; notebooks are stored clean and parameterised."""
import json

import pytest

from pspl_nb.reproduce import execute, notebooks, to_html

NOTEBOOKS = notebooks()


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_a_parameters_cell(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
    first = code[0]
    assert "parameters" in first["metadata"].get("tags", []), f"{path.name}: first code cell is not `parameters`"
    assert "PSPL_PROFILE" in "".join(first["source"])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.fixture(scope="session")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("results")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_the_smoke_profile(path, results, data_root, monkeypatch):
    monkeypatch.setenv("PSPL_RESULTS", str(results))
    monkeypatch.setenv("PSPL_DATA", str(data_root))
    monkeypatch.setenv("CI", "1")
    out = execute(path, "smoke", results / "smoke" / "notebooks", timeout=600)
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert to_html(out).stat().st_size > 10_000

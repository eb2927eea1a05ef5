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
@pytest.mark.xdist_group("kernels")  # one kernel at a time: see tests/test_browser.py
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_the_smoke_profile(path, results, data_root, monkeypatch):
    monkeypatch.setenv("PSPL_RESULTS", str(results))
    monkeypatch.setenv("PSPL_DATA", str(data_root))
    monkeypatch.setenv("CI", "1")
    out = execute(path, "smoke", results / "smoke" / "notebooks", timeout=300)
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert to_html(out).stat().st_size > 10_000


def test_snapshot_reference_copies_tables_with_provenance(tmp_path, monkeypatch):
    from pspl_nb.config import RunConfig, profile
    from pspl_nb.reproduce import snapshot_reference

    monkeypatch.setenv("PSPL_RESULTS", str(tmp_path))
    (tmp_path / "smoke" / "tables").mkdir(parents=True)
    (tmp_path / "smoke" / "tables" / "ablation_histories.csv").write_text("arm,seed\nl1,0\n")
    (tmp_path / "smoke" / "timings.csv").write_text("notebook,seconds\n00_overview.ipynb,1.0\n")
    dst = snapshot_reference("smoke")
    assert dst == tmp_path / "reference" / "smoke"
    assert (dst / "ablation_histories.csv").read_text() == "arm,seed\nl1,0\n"
    meta = json.loads((dst / "provenance.json").read_text())
    assert RunConfig.from_dict(meta["config"]) == profile("smoke") and meta["seeds"] == [0, 1] and meta["code_version"]

"""``make executed``: the executed copies kept in the repository are slimmed (figures scaled and re-encoded, on
white, timestamps dropped) and keep their figures and widget state; the command runs on the smoke profile."""
import base64
import io
import json

import nbformat
import numpy as np
import pytest
from PIL import Image

from pspl_nb import executed

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def png(width: int, height: int, alpha: bool = True) -> str:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (height, width, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        pixels[..., 3] = 0  # a transparent background, as Jupyter's inline figures have
        pixels[: height // 2, :, 3] = 255
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_slim_png_scales_wide_figures_down_and_puts_them_on_white():
    wide = image(executed.slim_png(png(2400, 300), max_width=1200))
    assert wide.size == (1200, 150) and wide.mode == "RGB"
    assert np.asarray(wide)[-1].min() == 255  # the transparent half became white, not black
    narrow = executed.slim_png(png(300, 100, alpha=False), max_width=1200)
    assert image(narrow).size == (300, 100)
    assert np.array_equal(np.asarray(image(narrow)), np.asarray(image(png(300, 100, alpha=False))))  # lossless
    assert executed.slim_png("") == ""  # an Image widget before its first picture


def test_slim_keeps_outputs_and_widgets_and_drops_timestamps():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("S.show(fig)", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": png(2000, 200), "text/plain": "<Figure>"})])
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    cell.metadata["papermill"] = {"duration": 1.5, "status": "completed"}
    nb.cells = [cell]
    nb.metadata["papermill"] = {"start_time": "x", "end_time": "y", "duration": 3.0, "parameters": {"PROFILE": "cpu"}}
    captured = {"output_type": "display_data", "data": {"image/png": png(1800, 200)}, "metadata": {}}
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": {
        "out": {"model_name": "OutputModel", "state": {"outputs": [captured]}},
        "img": {"model_name": "ImageModel", "state": {"format": "png"},
                "buffers": [{"path": ["value"], "encoding": "base64", "data": png(1600, 100)}]},
        "s": {"model_name": "FloatSliderModel", "state": {"description": "gamma", "value": 2.5}}}}}
    slim = executed.slim(json.loads(nbformat.writes(nb)))
    assert image(slim["cells"][0]["outputs"][0]["data"]["image/png"]).width == executed.MAX_WIDTH
    assert "execution" not in slim["cells"][0]["metadata"] and not slim["cells"][0]["metadata"]["papermill"]
    assert slim["metadata"]["papermill"] == {"parameters": {"PROFILE": "cpu"}}
    state = slim["metadata"]["widgets"][WIDGET_STATE]["state"]
    assert image(state["out"]["state"]["outputs"][0]["data"]["image/png"]).width == executed.MAX_WIDTH
    assert image(state["img"]["buffers"][0]["data"]).width == executed.MAX_WIDTH
    assert state["s"]["state"] == {"description": "gamma", "value": 2.5}
    nbformat.validate(nbformat.reads(json.dumps(slim), as_version=4))


@pytest.mark.notebook
@pytest.mark.xdist_group("kernels")
def test_make_executed_writes_slim_copies_with_figures_and_widget_state(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("PSPL_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PSPL_DATA", str(data_root))
    monkeypatch.setenv("CI", "1")
    executed.main(["--profile", "smoke", "--out", str(tmp_path / "executed"), "--only", "02"])
    copy = tmp_path / "executed" / "02_pspl_explained.ipynb"
    nb = json.loads(copy.read_text())
    pngs = [o["data"]["image/png"] for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert pngs and all(image(p).width <= executed.MAX_WIDTH and image(p).mode == "RGB" for p in pngs)
    state = nb["metadata"]["widgets"][WIDGET_STATE]["state"]
    assert {m["state"].get("description") for m in state.values()} >= {"gamma", "mu", "alpha", "beta"}
    assert not [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert nb["metadata"]["papermill"]["parameters"] == {"PROFILE": "smoke"}
    index = (tmp_path / "executed" / "index.md").read_text()
    assert "smoke profile" in index and "[02_pspl_explained](02_pspl_explained.ipynb)" in index
    from pspl_nb.run_folder import code_version

    assert f"| `{code_version()}` |" in index  # the version the notebook's opening cell printed
    assert copy.stat().st_size < 3e6


def test_kit_version_reads_the_banner_line_or_says_it_is_unknown():
    banner = {"output_type": "stream", "name": "stdout",
              "text": ["profile cpu | device cpu | torch 2.13.0+cpu | python 3.11.7 | kit 287f918-dirty\n"]}
    nb = {"cells": [{"cell_type": "code", "outputs": []}, {"cell_type": "code", "outputs": [banner]}]}
    assert executed.kit_version(nb) == "287f918-dirty"
    assert executed.kit_version({"cells": [{"cell_type": "markdown"}]}) == "?"

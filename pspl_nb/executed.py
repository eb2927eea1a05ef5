"""``make executed``: the executed notebooks of one profile, kept in the repository (``notebooks/executed/``), so
that a reader sees every figure, table and printed result on the repository page without running anything.

Each notebook is executed with ``reproduce.execute`` (papermill, the profile injected, widget state kept),
then slimmed for the repository: figures wider than ``MAX_WIDTH`` pixels are scaled down, every PNG is
re-encoded with the smallest lossless settings, and the execution timestamps (different on every run) are
dropped so that a re-run only changes what the results changed. ``index.md`` beside them names the profile,
the code version and the size of each copy.
"""
import argparse
import base64
import io
import json
import re
import tempfile
from datetime import date
from pathlib import Path

from PIL import Image

from pspl_nb.reproduce import chosen, execute

OUT = Path(__file__).resolve().parents[1] / "notebooks" / "executed"
MAX_WIDTH = 1200  # pixels: a figure's width on a laptop screen; wider PNGs are scaled down to it
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def slim_png(data: str, max_width: int = MAX_WIDTH) -> str:
    """A base64 PNG scaled down to ``max_width`` pixels wide (aspect kept) if wider, put on a white background
    (Jupyter's inline figures are transparent, which a dark page theme turns into black on black) and
    re-encoded losslessly with the smallest settings. Returns base64 text; data that is no image (an Image
    widget that never showed one holds b"") comes back unchanged."""
    raw = base64.b64decode(data)
    try:
        image = Image.open(io.BytesIO(raw))
    except (OSError, ValueError):
        return data
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def _slim_outputs(outputs: list, max_width: int) -> None:
    for o in outputs:
        data = o.get("data", {})
        if "image/png" in data:
            data["image/png"] = slim_png("".join(data["image/png"]), max_width)


def slim(nb: dict, max_width: int = MAX_WIDTH) -> dict:
    """Slim an executed notebook (JSON dict) in place for the repository and return it: the PNGs of cell
    outputs and of stored widgets (an Output widget's captured figures, an Image widget's PNG) go through
    ``slim_png``; papermill's and nbclient's per-cell execution times are dropped."""
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).get("papermill", {}).clear()
        _slim_outputs(cell.get("outputs", []), max_width)
    for model in nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}).values():
        if model.get("model_name") == "OutputModel":
            _slim_outputs(model["state"].get("outputs", []), max_width)
        if model.get("model_name") == "ImageModel" and model["state"].get("format") == "png":
            for buf in model.get("buffers", []):
                if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
                    buf["data"] = slim_png(buf["data"], max_width)
    papermill = nb["metadata"].get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path"):
        papermill.pop(key, None)
    return nb


def kit_version(nb: dict) -> str:
    """The code version a notebook ran with: the ``kit <version>`` its opening cell prints (``notebook.banner``),
    or "?" where no output names one."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            match = re.search(r"\| kit (\S+)", "".join(out.get("text", "")))
            if match:
                return match.group(1)
    return "?"


def write_index(out: Path, profile: str, paths: list[Path]) -> Path:
    """``index.md`` in ``out``: which profile made the copies, and each copy's code version and size (copies
    are rewritten one at a time with ``--only``, so they can come from different versions)."""
    lines = [f"# Executed notebooks ({profile} profile)", "",
             f"Written by `make executed` (`python -m pspl_nb.executed --profile {profile}`); index updated on "
             f"{date.today()}. Each is a notebook of `notebooks/` run top to bottom, with its figures, tables and "
             "the sliders' state as the run left them; the code version is the one its opening cell printed.", "",
             "| notebook | code version | size |", "|---|---|---|"]
    lines += [f"| [{p.stem}]({p.name}) | `{kit_version(json.loads(p.read_text()))}` | {p.stat().st_size / 1e6:.2f} MB |"
              for p in sorted(paths)]
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index


def write_executed(profile: str = "cpu", out: Path = OUT, only=None, timeout: int | None = None,
                   max_width: int = MAX_WIDTH) -> list[Path]:
    """Execute the notebooks (those whose names start with one of ``only``, default all) in ``profile`` and
    write their slimmed copies to ``out``, then ``index.md``. Returns the copies' paths. Training runs are
    cached as in ``make reproduce``: runs that exist are loaded, not trained again."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="pspl-executed-") as tmp:
        for path in chosen(only):
            print(f"[{profile}] {path.name} ...", flush=True)
            nb = slim(json.loads(execute(path, profile, Path(tmp), timeout).read_text()), max_width)
            target = out / path.name
            target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            written.append(target)
            print(f"[{profile}] {path.name}: {target.stat().st_size / 1e6:.2f} MB", flush=True)
    write_index(out, profile, sorted(out.glob("[0-9][0-9]_*.ipynb")))
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.executed", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 02 04")
    p.add_argument("--max-width", type=int, default=MAX_WIDTH)
    a = p.parse_args(argv)
    paths = write_executed(a.profile, a.out, a.only, max_width=a.max_width)
    total = sum(q.stat().st_size for q in a.out.glob("[0-9][0-9]_*.ipynb"))
    print(f"{len(paths)} notebooks written to {a.out}; the folder holds {total / 1e6:.2f} MB of notebooks")


if __name__ == "__main__":
    main()

"""``make reproduce``: execute every notebook in order for one profile.

Writes ``results/<profile>/notebooks/<name>.ipynb`` (executed), ``.html`` beside it, the figures and tables
the notebooks save, and ``timings.csv``. Training runs are cached in ``results/runs/``, so a second
``make reproduce`` only re-executes the notebooks.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

from pspl_nb.config import PROFILES
from pspl_nb.processes import raise_on_sigterm
from pspl_nb.places import results_root

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def execute(path: Path, profile: str, out_dir: Path, timeout: int | None = None) -> Path:
    """Run one notebook with ``PROFILE = profile`` injected after its ``parameters`` cell; returns the copy.

    The copy keeps the widgets as the kernel left them: nbclient records every ipywidgets model the kernel
    opens or updates (slider values, the figure an Output widget last captured) and papermill writes that
    record to ``metadata.widgets["application/vnd.jupyter.widget-state+json"]``, which ``to_html`` embeds.
    A failing cell raises ``papermill.PapermillExecutionError``; the partly executed copy is still written.
    The kernel is shut down when the notebook ends, however it ends: politely after the last cell, at once
    (with every process it started, such as ``run_grid``'s workers) when interrupted or failed.
    """
    import shutil
    import tempfile

    import papermill
    from jupyter_client.manager import KernelManager

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    os.environ["PSPL_PROFILE"] = profile  # the kernel inherits it: a cell reading the default sees it too
    # The kernel talks over Unix sockets in a private folder, not TCP ports: jupyter_client picks a port by
    # binding and releasing it, so another process (a second kernel, torchrun) can take it in between and a
    # lost reply leaves the client waiting for ever.
    sockets = tempfile.mkdtemp(prefix="pspl-kernel-")
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
    finished = False
    try:
        papermill.execute_notebook(str(path), str(out), parameters={"PROFILE": profile}, kernel_name="python3",
                                   cwd=str(path.parent), progress_bar=False, execution_timeout=timeout, km=km,
                                   # nbclient's default, stated: the HTML needs it, and so does nbclient's stand-in
                                   # for the Output widget (with False, notebook 02's explorer cell never finishes)
                                   store_widget_state=True)
        finished = True
    finally:
        # papermill shuts down only the kernels it creates; this one would live until the command ends.
        # now=True kills the kernel's process group: the kernel and every process it started.
        if km.has_kernel:
            km.shutdown_kernel(now=not finished)
        shutil.rmtree(sockets, ignore_errors=True)
    return out


def to_html(executed: Path) -> Path:
    """An HTML copy of an executed notebook that needs no kernel: figures inline, widgets as they were left.

    Figures are ``<img src="data:image/png;base64,...">``. The widget state of the notebook's metadata is
    embedded as ``<script type="application/vnd.jupyter.widget-state+json">`` with one
    ``application/vnd.jupyter.widget-view+json`` script per displayed widget; in a browser, ipywidgets'
    HTML manager (fetched from a CDN, in the version range the installed ipywidgets declares compatible
    with the state it wrote, instead of nbconvert's default "any version") draws the sliders at their last
    values and the Output widget's last figure. Offline, every figure outside a widget still shows.
    """
    from ipywidgets.embed import DEFAULT_EMBED_REQUIREJS_URL
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(widget_renderer_url=DEFAULT_EMBED_REQUIREJS_URL).from_filename(str(executed))
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def chosen(only=None) -> list[Path]:
    """The numbered notebooks whose names start with one of ``only`` (default: all), in order."""
    return [nb for nb in notebooks() if not only or any(nb.name.startswith(x) for x in only)]


def run_notebooks(paths, profile: str, out_dir: Path, html: bool = True, timeout: int | None = None) -> pd.DataFrame:
    """``execute`` each notebook of ``paths`` in order with ``profile`` into ``out_dir`` (with its HTML copy
    beside it when ``html``), saying when each starts and ends. Returns the timings: notebook, seconds."""
    timings = []
    for nb in paths:
        t0 = time.perf_counter()
        print(f"[{profile}] {nb.name} ...", flush=True)
        out = execute(nb, profile, out_dir, timeout)
        if html:
            to_html(out)
        timings.append(dict(notebook=nb.name, seconds=round(time.perf_counter() - t0, 1)))
        print(f"[{profile}] {nb.name} done in {timings[-1]['seconds']} s", flush=True)
    return pd.DataFrame(timings, columns=["notebook", "seconds"])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m pspl_nb.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=os.environ.get("PSPL_PROFILE") or "cpu",
                   help=f"one of {', '.join(PROFILES)} (default: $PSPL_PROFILE, else cpu)")
    p.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 02 03")
    a = p.parse_args(argv)
    if a.profile not in PROFILES:
        p.error(f"--profile {a.profile!r} (or PSPL_PROFILE): expected one of {', '.join(PROFILES)}")
    unknown = [x for x in a.only or () if not chosen([x])]
    if unknown or not chosen(a.only):
        p.error(f"--only {' '.join(unknown or a.only)}: no notebook starts with that; the notebooks are "
                + ", ".join(nb.stem for nb in notebooks()))
    raise_on_sigterm()  # a time limit's SIGTERM shuts the kernel down as Ctrl-C does
    folder = results_root() / a.profile
    try:
        table = run_notebooks(chosen(a.only), a.profile, folder / "notebooks")
    except KeyboardInterrupt:  # Ctrl-C or a time limit: execute has already shut the kernel down
        print(f"[{a.profile}] stopped; the notebook's kernel and the processes it started are gone, finished "
              "training runs are kept", file=sys.stderr, flush=True)
        sys.exit(130)
    table.to_csv(folder / "timings.csv", index=False)
    print(table.to_string(index=False), f"\ntotal {table.seconds.sum():.0f} s; results in {folder}")


if __name__ == "__main__":
    main()

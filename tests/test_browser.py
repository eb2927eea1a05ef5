"""Notebooks 02 and 04 in a real browser: JupyterLab on 127.0.0.1, the system Chromium driven by Playwright,
Run All; in 02 the gamma and step sliders must redraw the explorer's figure, in 04 a moved race slider and the
Start button must train and redraw the race, with no error on the page. Then the HTML copy that
``make reproduce`` writes is opened in the browser: it must carry the widgets' state.

The test starts and stops everything itself: the server in a process group of its own (its kernels, which
jupyter_client starts in sessions of their own, are found through /proc and stopped by pid) and the browser.
JupyterLab's config, data, runtime and settings folders are under the test's tmp folder, so nothing reaches ~.
"""
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "02_pspl_explained.ipynb"
RACE_NOTEBOOK = REPO / "notebooks" / "04_attention_during_training.ipynb"
SCREENSHOTS = REPO / "results" / "browser"
# No GPU, no sandbox (root in containers), and no network traffic of Chromium's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FIGURE = ".pspl-figure img"  # CSS classes added in widgets.explorer
ERRORS = '.jp-OutputArea-output[data-mime-type*="error"]'
# The toolbar's status reads "idle" before any kernel exists too ("No Kernel"): cells run then are dropped.
KERNEL_IDLE = """() => {
    const name = document.querySelector('.jp-NotebookPanel-toolbar .jp-Toolbar-kernelName');
    const status = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
    const label = name ? name.getAttribute('aria-label') || '' : '';
    return label !== '' && label !== 'No Kernel' && status !== null && status.dataset.status === 'idle';
}"""
LAB_SETTINGS = {
    # Without it JupyterLab asks which kernel to start, in a modal dialog that blocks the menus.
    "notebook-extension/tracker": {"autoStartDefaultKernel": True},
    # No news and no update checks: the machine may have no network, and their toasts would cover the page.
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

pytestmark = [
    pytest.mark.browser,
    # every test that starts Jupyter kernels runs on one xdist worker: jupyter_client picks kernel ports by
    # binding and releasing them, so two kernels started at once can collide and lose messages (a hang)
    pytest.mark.xdist_group("kernels"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_table() -> dict:
    """pid -> (ppid, start time) of every process, from /proc."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
        except OSError:  # exited while we looked
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return table


def descendants(pid: int) -> dict:
    """pid -> start time of every process below ``pid``; the start time tells a reused pid from ours."""
    table = process_table()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, start) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def stop(server: subprocess.Popen) -> None:
    """SIGTERM (the server shuts its kernels down), SIGKILL after 15 s, then kill whatever it left behind."""
    below = descendants(server.pid)
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    table = process_table()
    for pid, start in below.items():
        if pid in table and table[pid][1] == start:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def lab(tmp_path, data_root):
    """JupyterLab on a free port of 127.0.0.1, root_dir holding a copy of notebook 02, smoke profile."""
    root = tmp_path / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root)
    shutil.copy(RACE_NOTEBOOK, root)
    home = tmp_path / "jupyter"
    settings = home / "config" / "lab" / "user-settings" / "@jupyterlab"
    for plugin, values in LAB_SETTINGS.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(os.environ, PSPL_PROFILE="smoke", PSPL_DATA=str(data_root), PSPL_RESULTS=str(tmp_path / "results"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               MPLCONFIGDIR=str(home / "matplotlib"), CI="1", OMP_NUM_THREADS="1")
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.extension_manager=readonly"]  # the default one asks PyPI about extensions
    if os.geteuid() == 0:  # CI containers run as root, which JupyterLab refuses unless told
        cmd.append("--allow-root")
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                urllib.request.urlopen(request, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield SimpleNamespace(url=url, token=token, log=log)
    finally:
        stop(server)


@pytest.fixture
def page(tmp_path):
    """A headless Chromium page with a fresh profile in tmp; closed (browser and driver) whatever happens."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1000})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def png(img) -> bytes:
    """The bytes of an <img> that JupyterLab rendered from image/png output: its src is a base64 data: URL."""
    src = img.get_attribute("src")
    assert src.startswith("data:image/png;base64,"), src[:80]
    return base64.b64decode(src.split(",", 1)[1])


def changed(page, img, before: bytes, timeout=30.0) -> bytes:
    """Wait until the figure's bytes differ from ``before``; return the new bytes."""
    deadline = time.monotonic() + timeout
    while (now := png(img)) == before:
        if time.monotonic() > deadline:
            pytest.fail(f"the figure did not change within {timeout} s")
        page.wait_for_timeout(250)
    return now


def press(page, slider: str, key: str, times: int, prefix: str = "pspl") -> None:
    """Move an ipywidgets 8 slider (a noUiSlider) from the keyboard: focus its handle, press ``key``.
    ``prefix``: the widget's CSS class family (``pspl-`` for the explorer, ``race-`` for the race)."""
    readout = page.locator(f".{prefix}-{slider} .widget-readout")
    value = readout.inner_text()
    handle = page.locator(f".{prefix}-{slider} .noUi-handle")
    handle.focus()
    for _ in range(times):
        handle.press(key)
    page.wait_for_function("([el, v]) => el.innerText !== v", arg=[readout.element_handle(), value], timeout=10_000)


def assert_no_errors(page) -> None:
    errors = page.locator(ERRORS)
    assert errors.count() == 0, errors.all_inner_texts()
    tracebacks = page.locator(".jp-OutputArea-output", has_text="Traceback")
    assert tracebacks.count() == 0, tracebacks.all_inner_texts()


def test_sliders_redraw_the_explorer_figure(lab, page):
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}")
    page.wait_for_function(KERNEL_IDLE)
    try:
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
        figure = page.locator(FIGURE)
        figure.wait_for(timeout=180_000)  # the last cell: the kernel has run every cell before it
        page.wait_for_function(KERNEL_IDLE)
        assert_no_errors(page)
        before = png(figure)
        assert before.startswith(b"\x89PNG"), before[:16]

        press(page, "gamma", "ArrowRight", 3)  # 2.0 -> 2.3
        after_gamma = changed(page, figure, before)
        press(page, "step", "ArrowRight", 4)  # 2^0 -> 2^1 epochs (log slider, 0.25 per key)
        after_step = changed(page, figure, after_gamma)
        assert len({before, after_gamma, after_step}) == 3
        page.wait_for_function(KERNEL_IDLE)
        assert_no_errors(page)
        shot = SCREENSHOTS / "02_pspl_explained.png"
    except BaseException:
        shot = SCREENSHOTS / "02_pspl_explained-failure.png"
        raise
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        explorer = page.locator(".pspl-figure")
        if explorer.count():
            explorer.scroll_into_view_if_needed(timeout=5_000)
        page.screenshot(path=shot)


def run_all(page, lab, notebook: Path, last: str) -> None:
    """Open ``notebook``, Run All Cells, wait until the element ``last`` (drawn by the last cell) is there."""
    page.goto(f"{lab.url}/lab/tree/{notebook.name}?token={lab.token}")
    page.wait_for_function(KERNEL_IDLE)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    page.locator(last).wait_for(timeout=240_000)
    page.wait_for_function(KERNEL_IDLE)
    assert_no_errors(page)


def test_a_moved_slider_and_start_retrain_and_redraw_the_race(lab, page):
    page.set_default_timeout(60_000)
    try:
        run_all(page, lab, RACE_NOTEBOOK, ".race-start")
        image = page.locator(".race-image")
        press(page, "alpha", "ArrowLeft", 4, prefix="race")  # alpha 1.0 -> 0.8
        page.locator(".race-start").click()
        image.wait_for(state="attached")
        page.wait_for_function("el => el.getAttribute('src') && el.getAttribute('src').startsWith('blob:') || "
                               "(el.getAttribute('src') || '').startsWith('data:image/png')",
                               arg=image.element_handle(), timeout=120_000)
        first = image.get_attribute("src")
        page.wait_for_function("([el, v]) => el.getAttribute('src') !== v", arg=[image.element_handle(), first],
                               timeout=120_000)  # redrawn after a later epoch
        status = page.locator(".race-status")
        assert "racing" in status.inner_text()
        page.locator(".race-stop").click()
        page.wait_for_function("el => el.innerText.startsWith('stopped')", arg=status.element_handle())
        assert_no_errors(page)
        shot = SCREENSHOTS / "04_race.png"
    except BaseException:
        shot = SCREENSHOTS / "04_race-failure.png"
        raise
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=shot, full_page=False)


def test_the_html_copy_carries_the_widget_state(tmp_path, data_root, page, monkeypatch):
    """The executed copy ``make reproduce`` writes, opened from disk: the sliders' state is in the page."""
    from pspl_nb.reproduce import execute, to_html

    monkeypatch.setenv("PSPL_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("PSPL_DATA", str(data_root))
    monkeypatch.setenv("CI", "1")
    html = to_html(execute(NOTEBOOK, "smoke", tmp_path / "out", timeout=300))
    page.goto(html.as_uri())
    state = page.evaluate("""() => {
        const s = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
        return s ? JSON.parse(s.textContent).state : null;
    }""")
    assert state, "no widget state in the HTML copy"
    sliders = {m["state"].get("description"): m["state"].get("value") for m in state.values()
               if m["model_name"].endswith("SliderModel")}
    assert sliders["gamma"] == 2.0 and sliders["alpha"] == 1.0  # as the notebook left them
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
    assert views.count() >= 1

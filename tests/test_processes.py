"""Nothing outlives its parent: notebook kernels end with their notebook, grid workers with whatever started
them, and `make reproduce` stopped mid-grid leaves no process behind. Also the command lines' edge cases.

Every process a test starts carries a unique ``PSPL_TEST_TAG`` in its environment (children inherit it),
so the test finds exactly its own processes among those of other test workers and users."""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from pspl_nb import experiments, reproduce

ROOT = Path(__file__).resolve().parents[1]


def tagged(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment holds ``PSPL_TEST_TAG=tag``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"PSPL_TEST_TAG={tag}".encode() not in (proc / "environ").read_bytes():
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":  # exited, not yet reaped
                continue
            found.append((int(proc.name), (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]))
        except OSError:
            pass
    return found


def wait_for(condition, seconds: float, step: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def workers(tag: str) -> list:
    return [p for p in tagged(tag) if "spawn_main" in p[1]]


def tagged_env(tmp_path, data_root) -> tuple[dict, str]:
    tag = uuid.uuid4().hex
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PROFILE", "PSPL_PROFILE")  # of a `make test` above
    env = {k: v for k, v in os.environ.items() if k not in outer}
    return {**env, "PSPL_RESULTS": str(tmp_path / "results"), "PSPL_DATA": str(data_root), "CI": "1",
            "OMP_NUM_THREADS": "1", "PSPL_TEST_TAG": tag}, tag


def stop_all(tag: str) -> None:
    for pid, _ in tagged(tag):  # never leave a failed test's processes running
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads processes from /proc")


@pytest.mark.processes
@pytest.mark.xdist_group("kernels")
def test_make_reproduce_stopped_mid_grid_leaves_no_process(tmp_path, data_root):
    """`make reproduce ONLY=03` runs notebook 03 alone, in one kernel. A time limit (``timeout`` sends
    SIGTERM to make's process group) while its grid trains: make, the reproduce command, the kernel (in a
    session of its own, which the signal does not reach) and the grid's workers are all gone a few seconds
    later. Ctrl-C (SIGINT) takes the same path."""
    env, tag = tagged_env(tmp_path, data_root)
    make = subprocess.Popen(["make", "-o", ".venv/.installed", "reproduce", "PROFILE=smoke", "ONLY=03"], cwd=ROOT,
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = wait_for(lambda: len(workers(tag)) >= 2, 300)
        assert seen, f"the grid never started: {tagged(tag)}"
        kernels = [p for p in tagged(tag) if "ipykernel_launcher" in p[1]]
        assert len(kernels) == 1, f"more than notebook 03's kernel: {kernels}"
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)
        left = wait_for(lambda: not tagged(tag), 15) or tagged(tag)
        assert left is True, f"left behind: {left}"
    finally:
        stop_all(tag)
        make.kill()


@pytest.mark.processes
def test_grid_workers_exit_when_the_grid_process_is_killed(tmp_path, data_root):
    """SIGKILL (the out-of-memory killer, kill -9) gives the grid's process no chance to stop its workers:
    they notice their parent is gone and exit."""
    env, tag = tagged_env(tmp_path, data_root)
    grid = subprocess.Popen([sys.executable, "-m", "pspl_nb.experiments", "--profile", "smoke", "--seeds", "2",
                             "--jobs", "2", "--out", str(tmp_path / "grid.csv")], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: len(workers(tag)) >= 2, 240), f"the grid never started: {tagged(tag)}"
        grid.kill()
        grid.wait()
        left = wait_for(lambda: not tagged(tag), 15) or tagged(tag)
        assert left is True, f"left behind: {left}"
        assert not (tmp_path / "grid.csv").exists()
    finally:
        stop_all(tag)


def notebook(path: Path, code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os\nopen('kernel.pid', 'w').write(str(os.getpid()))"),
                nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.xdist_group("kernels")
def test_each_notebooks_kernel_ends_with_the_notebook(tmp_path):
    """The kernel that ran a notebook is gone when ``execute`` returns, and so is one whose cell failed,
    with the processes it started."""
    import papermill

    reproduce.execute(notebook(tmp_path / "ok.ipynb", "x = 1"), "smoke", tmp_path / "out")
    assert not alive(int((tmp_path / "kernel.pid").read_text()))
    child = "import subprocess\np = subprocess.Popen(['sleep', '600'])\nopen('child.pid', 'w').write(str(p.pid))\n1 / 0"
    with pytest.raises(papermill.PapermillExecutionError):
        reproduce.execute(notebook(tmp_path / "fails.ipynb", child), "smoke", tmp_path / "out")
    assert not alive(int((tmp_path / "kernel.pid").read_text()))
    assert wait_for(lambda: not alive(int((tmp_path / "child.pid").read_text())), 5)


# ---- command-line edge cases: refused before anything runs, in one line -----------------------------------

def test_reproduce_only_names_the_notebooks_that_exist(capsys):
    with pytest.raises(SystemExit) as stop:
        reproduce.main(["--profile", "smoke", "--only", "99"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and "--only 99: no notebook starts with that" in err and "03_ablation_edsr_x2" in err


def test_reproduce_takes_its_profile_from_pspl_profile(monkeypatch, capsys):
    monkeypatch.setenv("PSPL_PROFILE", "smok")
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "99"])
    assert "--profile 'smok' (or PSPL_PROFILE): expected one of smoke, cpu" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0", "--out", "grid.csv"], "argument --seeds: '0': expected a whole number of seeds >= 1"),
    (["--out", "missing/grid.csv"], "--out missing/grid.csv: the folder "),
])
def test_experiments_refuses_bad_arguments_before_training(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiments, "critical_grid", None)  # nothing is planned, let alone trained
    with pytest.raises(SystemExit) as stop:
        experiments.main(["--profile", "smoke", *args])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and message in err
    if "missing" in message:
        assert err.endswith(f"{tmp_path / 'missing'} does not exist; create it first")


def test_an_empty_grid_says_so():
    with pytest.raises(ValueError, match="run_grid: no configs to run"):
        experiments.run_grid([])

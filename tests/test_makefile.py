"""The Makefile on a careless day: an old Python, a broken .venv, PSPL_PROFILE beside PROFILE, `make clean`.

Each test runs the real Makefile in a scratch copy of the repository's top level, with stand-in Python
interpreters (small shell scripts that report a version and log how they were called), so no interpreter
is installed, no package downloaded, and the real .venv and results are never touched."""
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

FAKE_PYTHON = """\
#!/bin/sh
# A stand-in interpreter reporting Python {version}: logs its calls, makes a venv of itself, accepts pip.
echo "{name} $*" >> "$FAKE_LOG"
case "$1" in
  --version) echo "Python {version}" ;;
  -c) exit {old} ;;
  -m) case "$2" in
        venv) mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
        pip) [ {old} = 0 ] || {{ echo "ERROR: ResolutionImpossible" >&2; exit 1; }} ;;
      esac ;;
esac
"""


def fake_python(folder: Path, name: str, version: str) -> Path:
    path = folder / name
    old = int(tuple(map(int, version.split(".")[:2])) < (3, 11))
    path.write_text(FAKE_PYTHON.format(name=name, version=version, old=old))
    path.chmod(0o755)
    return path


@pytest.fixture
def repo(tmp_path):
    """A scratch top level: the Makefile and the files its venv rule depends on; fake pythons on PATH."""
    top = tmp_path / "repo"
    top.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, top / name)
    shutil.copytree(ROOT / "pspl_nb", top / "pspl_nb", ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_python(bin_dir, "python3.9", "3.9.18")
    fake_python(bin_dir, "python3.10", "3.10.14")
    fake_python(bin_dir, "python3.12", "3.12.4")
    return top


def make(repo: Path, *args, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    path = f"{repo.parent / 'bin'}{os.pathsep}{os.environ['PATH']}"
    # a fresh make: nothing from the `make test` this may run under (MAKEFLAGS carries its command-line variables)
    outer = ("PSPL_PROFILE", "PSPL_RESULTS", "PROFILE", "FORCE", "ONLY", "MAKEFLAGS", "MFLAGS", "MAKELEVEL",
             "MAKEOVERRIDES")
    base = {k: v for k, v in os.environ.items() if k not in outer}
    env = {**base, "PATH": path, "FAKE_LOG": str(repo.parent / "calls.log"), **(env or {})}
    return subprocess.run(["make", *args], cwd=repo, env=env, input=stdin, capture_output=True, text=True, timeout=60)


def calls(repo: Path) -> str:
    log = repo.parent / "calls.log"
    return log.read_text() if log.exists() else ""


@pytest.mark.parametrize("python, version", [("python3.9", "3.9.18"), ("python3.10", "3.10.14")])
def test_an_old_python_is_named_before_pip_runs(repo, python, version):
    done = make(repo, "env", f"PYTHON={python}")
    assert done.returncode != 0
    assert f"Python too old: {python} is Python {version}, the kit needs Python 3.11 or newer" in done.stderr
    assert "ResolutionImpossible" not in done.stderr + done.stdout
    assert " -m " not in calls(repo)  # neither venv nor pip ran
    assert not (repo / ".venv").exists()


def test_a_broken_venv_is_rebuilt_not_reused(repo):
    """A .venv left by an old Python (here: its interpreter reports 3.9) is replaced by one of PYTHON."""
    (repo / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(repo.parent / "bin" / "python3.9", repo / ".venv" / "bin" / "python")
    (repo / ".venv" / "left-over").write_text("from the old venv")
    done = make(repo, "env", "PYTHON=python3.12")
    assert done.returncode == 0, done.stderr
    assert ".venv does not run Python 3.11+ (broken or made by an older Python): rebuilding it" in done.stderr
    assert not (repo / ".venv" / "left-over").exists() and (repo / ".venv" / ".installed").exists()
    assert "python3.12 -m venv .venv" in calls(repo) and "python3.12 -m pip install" in calls(repo)
    before = calls(repo)
    assert make(repo, "env", "PYTHON=python3.12").returncode == 0 and calls(repo) == before  # built: left alone


def stamped(repo: Path) -> None:
    """A .venv whose stamp is newer than the dependency files: `make -n reproduce` prints one command."""
    (repo / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(repo.parent / "bin" / "python3.12", repo / ".venv" / "bin" / "python")
    (repo / ".venv" / ".installed").touch()


def test_pspl_profile_is_the_profile_unless_make_is_told_otherwise(repo):
    stamped(repo)
    assert "--profile cpu" in make(repo, "-n", "reproduce").stdout
    told = make(repo, "-n", "reproduce", env={"PSPL_PROFILE": "smoke"})
    assert "--profile smoke" in told.stdout and told.stderr == ""
    both = make(repo, "-n", "reproduce", "PROFILE=gpu", env={"PSPL_PROFILE": "smoke"})
    assert "--profile gpu" in both.stdout
    assert "PROFILE=gpu (from the command line) is used, NOT PSPL_PROFILE=smoke from the environment" in both.stderr
    assert "--only 03 05" in make(repo, "-n", "reproduce", "ONLY=03 05").stdout


def trained(results: Path, name: str, seconds: float) -> None:
    run = results / name
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "history.csv").write_text(textwrap.dedent(f"""\
        epoch,wall_time,loss
        1,{seconds / 2},0.5
        2,{seconds},0.4
        """))


@pytest.fixture
def results(repo):
    res = repo / "results"
    trained(res / "runs", "edsr-a", 3600.0)
    trained(res / "runs", "edsr-b", 1800.0)
    trained(res / "rehearse" / "results" / "runs", "tiny-c", 360.0)
    for kept in ("gpu/figures", "paper/notebooks", "reference/cpu", "smoke/figures", "cpu/figures"):
        (res / kept).mkdir(parents=True)
    (repo / ".venv").mkdir()
    return res


def test_make_clean_keeps_every_trained_run(repo, results):
    done = make(repo, "clean")
    assert done.returncode == 0
    assert not (repo / ".venv").exists() and not (results / "smoke").exists() and not (results / "cpu").exists()
    for kept in ("runs/edsr-a", "runs/edsr-b", "rehearse/results/runs/tiny-c", "gpu", "paper", "reference"):
        assert (results / kept).exists(), kept
    assert "make clean-runs deletes them" in done.stdout


def test_clean_runs_says_what_it_deletes_and_asks(repo, results):
    said = "this deletes 3 trained runs (1.6 h of training) and the notebook outputs in results/runs, " \
           "results/rehearse, results/gpu, results/paper"
    unanswered = make(repo, "clean-runs")  # no terminal, no answer: nothing deleted
    assert unanswered.returncode != 0 and said in unanswered.stdout and "nothing deleted" in unanswered.stdout
    assert (results / "runs" / "edsr-a").exists()
    assert make(repo, "clean-runs", stdin="no\n").returncode != 0 and (results / "runs").exists()
    yes = make(repo, "clean-runs", stdin="yes\n")
    assert yes.returncode == 0 and "deleted 3 trained runs" in yes.stdout
    assert not (results / "runs").exists() and not (results / "gpu").exists() and (results / "reference").exists()


def test_clean_runs_with_force_does_not_ask(repo, results):
    done = make(repo, "clean-runs", "FORCE=1")
    assert done.returncode == 0 and "type yes" not in done.stdout and not (results / "runs").exists()


def test_clean_runs_follows_pspl_results(repo, results, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    trained(elsewhere / "runs", "edsr-z", 7200.0)
    done = make(repo, "clean-runs", "FORCE=1", env={"PSPL_RESULTS": str(elsewhere)})
    assert done.returncode == 0 and "this deletes 1 trained run (2.0 h of training)" in done.stdout
    assert not (elsewhere / "runs").exists() and (results / "runs" / "edsr-a").exists()

"""Shared test set-up: one embedded data set per session, one torch thread per pytest worker (the suite runs
under xdist on 2 cores). Nothing here changes the environment of later tests: a test that needs PSPL_DATA
sets it with monkeypatch, and a subprocess gets the data root in its own environment (``subprocess_env``)."""
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root holding the embedded set, built once per worker."""
    from pspl_nb.data import ensure_embedded

    root = tmp_path_factory.mktemp("data")
    ensure_embedded(root)
    return root


@pytest.fixture
def subprocess_env(data_root) -> dict:
    """The environment of a subprocess that trains: this one's, with one thread, no progress bars (``CI``)
    and the session's data root as ``PSPL_DATA``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1", "PSPL_DATA": str(data_root)}


@pytest.fixture
def instant_pool():
    """``instant_pool(answer)`` is a stand-in for ``ProcessPoolExecutor`` whose ``map`` starts no process and
    returns ``answer(n)`` for a pool of ``n``: what ``experiments.probe_concurrency`` decides from timings,
    without the timings (which vary by machine)."""
    def make(answer):
        class InstantPool:
            def __init__(self, n, **kw):
                self.n = n

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return False

            def map(self, f, args):
                return answer(self.n)

        return InstantPool

    return make

"""Shared test set-up: one embedded data set per session, results in a temporary folder, one torch thread
per pytest worker (the suite runs under xdist on 2 cores)."""
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root holding the embedded set (built once per worker), exported as PSPL_DATA for subprocesses."""
    from pspl_nb.data import ensure_embedded

    root = tmp_path_factory.mktemp("data")
    ensure_embedded(root)
    os.environ["PSPL_DATA"] = str(root)
    return root

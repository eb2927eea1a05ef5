"""Where the kit's three folders are: the data, the results (runs and notebook outputs) and the committed
reference grids. Each is an environment variable's value when it is set, else a folder of the repository."""
import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def _folder(variable: str, default: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else REPOSITORY / default


def data_root() -> Path:
    """Downloaded and built data sets: ``$PSPL_DATA``, else ``<repo>/data``."""
    return _folder("PSPL_DATA", "data")


def results_root() -> Path:
    """Trained runs and notebook outputs: ``$PSPL_RESULTS``, else ``<repo>/results``."""
    return _folder("PSPL_RESULTS", "results")


def reference_dir() -> Path:
    """The committed reference grids (``committed``): ``$PSPL_REFERENCE``, else ``<repo>/results/reference``."""
    return _folder("PSPL_REFERENCE", "results/reference")

"""Data for the kit: verified downloads (DIV2K, Set5, Set14, B100, Urban100, EDSR weights), an offline
embedded set built from scikit-image's photographs, benchmark preparation protocols and patch loading.

Every function takes ``root=None``, meaning ``default_root()`` (``$PSPL_DATA`` or ``<repo>/data``).
Command line: ``python -m pspl_nb.data fetch div2k|benchmarks|embedded|all [--root DIR]``.
"""
from .datasets import (EvalPair, TrainPatches, compare_lr, inventory, is_available, load_eval_set, read_rgb,
                       set_dir, y_uint8)
from .download import DownloadError, UnsafeArchiveError, fetch, load_checksums, safe_extract
from .embedded import ensure_embedded
from .prepare import HR_PREPS, prepare_folder, prepare_pair
from .sources import BASE_URLS, DATASET_KEYS, GROUPS, SET_NAMES, SOURCES, Source, default_root

__all__ = [
    "BASE_URLS", "DATASET_KEYS", "GROUPS", "HR_PREPS", "SET_NAMES", "SOURCES", "DownloadError", "EvalPair",
    "Source", "TrainPatches", "UnsafeArchiveError", "default_root", "ensure_embedded", "fetch",
    "load_checksums", "load_eval_set", "prepare_folder", "prepare_pair", "read_rgb", "safe_extract",
    "set_dir", "y_uint8", "compare_lr", "inventory", "is_available",
]

"""Data for the kit: verified, resumable downloads (DIV2K, Set5, Set14, B100, Urban100, EDSR weights), an
offline embedded set built from scikit-image's photographs, a synthetic DIV2K-shaped stand-in for offline
rehearsals, a checker for what is on disk, benchmark preparation protocols and patch loading.

Every function takes ``root=None``, meaning ``places.data_root()`` (``$PSPL_DATA`` or ``<repo>/data``).
Command line: ``python -m pspl_nb.data fetch|verify|standin ...`` (see ``__main__.py``).
"""
from .datasets import (DamagedImageError, EvalPair, SetCheck, TrainPatches, compare_lr, inventory, is_available,
                       load_eval_set, read_rgb, repair_command, set_dir, verify, verify_set, y_uint8)
from .download import (DiskSpaceError, DownloadError, UnsafeArchiveError, check_free_space, fetch, load_checksums,
                       safe_extract, space_needed)
from .embedded import ensure_embedded
from .prepare import HR_PREPS, prepare_folder, prepare_pair
from .sources import BASE_URLS, DATASET_KEYS, GROUPS, SET_NAMES, SOURCES, Source
from .standin import build_standin, is_standin

__all__ = [
    "BASE_URLS", "DATASET_KEYS", "GROUPS", "HR_PREPS", "SET_NAMES", "SOURCES", "DamagedImageError",
    "DiskSpaceError", "DownloadError", "EvalPair", "SetCheck", "Source", "TrainPatches", "UnsafeArchiveError",
    "build_standin", "check_free_space", "compare_lr", "ensure_embedded", "fetch", "inventory",
    "is_available", "is_standin", "load_checksums", "load_eval_set", "prepare_folder", "prepare_pair",
    "read_rgb", "repair_command", "safe_extract", "set_dir", "space_needed", "verify", "verify_set", "y_uint8",
]

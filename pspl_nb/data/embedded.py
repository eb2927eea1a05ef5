"""The offline set: natural RGB photographs shipped inside scikit-image's wheel, in the standard layout.

Nothing is downloaded: ``skimage.data`` reads these files from the installed package. The split is
fixed (``TRAIN``, ``VALID``) and by content, so no scene is on both sides: the two stereo_motorcycle
views are near duplicates and both train. Synthetic images (colorwheel, logo, ...) and the grayscale
ones are left out.

HR = ``modcrop(image, 12)`` (12 is divisible by 2, 3 and 4, so one HR serves every scale);
LR = MATLAB bicubic of HR, rounded to uint8 (``imresize_uint8``), for X2, X3 and X4.
The retina image is first cut to its central 1008 x 1008 square: the full frame is 23 % black border.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from pspl_nb.resize import imresize_uint8, modcrop

from .sources import SCALES, resolve_root

MODCROP = 12
TRAIN = ("astronaut", "rocket", "hubble_deep_field", "retina", "motorcycle_left", "motorcycle_right")
VALID = ("chelsea", "coffee", "immunohistochemistry")
# Bump when the recipe changes, so existing copies are rebuilt instead of silently reused.
RECIPE = {"version": 1, "train": TRAIN, "valid": VALID, "modcrop": MODCROP, "scales": SCALES,
          "lr": "imresize_uint8 (MATLAB bicubic, uint8 per pass)", "retina": "central 1008x1008"}
MARKER = ".embedded.json"


def _load(name: str) -> np.ndarray:
    """One scikit-image photograph as uint8 (H, W, 3)."""
    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(skimage.data, name)()
    if name == "retina":
        c = (img.shape[0] - 1008) // 2
        img = img[c : c + 1008, c : c + 1008]
    return np.ascontiguousarray(img[..., :3])


def _write_set(folder: Path, names: tuple[str, ...]) -> None:
    (folder / "HR").mkdir(parents=True)
    for name in names:
        hr = modcrop(_load(name), MODCROP)
        Image.fromarray(hr).save(folder / "HR" / f"{name}.png", compress_level=1)
        for s in SCALES:
            lr = imresize_uint8(hr, out_shape=(hr.shape[0] // s, hr.shape[1] // s))
            (folder / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(lr).save(folder / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png", compress_level=1)
    (folder / MARKER).write_text(json.dumps(RECIPE, indent=1) + "\n")


def _is_current(folder: Path) -> bool:
    marker = folder / MARKER
    # Compare through JSON so tuples and lists read back equal.
    return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(RECIPE))


def ensure_embedded(root=None) -> Path:
    """Build ``<root>/embedded_train`` and ``<root>/embedded_valid`` once; returns the data root.

    Idempotent: a set whose marker matches the current recipe is left alone. Atomic: both sets are
    written in a temporary folder under ``root`` and renamed into place, so an interrupted build never
    leaves a set that looks complete, and a concurrent builder that loses the race discards its copy.
    Takes ~2 s on one core (6 + 3 images, 3.7 Mpixel of HR, ~9 MB of PNG).
    """
    root = resolve_root(root)
    names = {"embedded_train": TRAIN, "embedded_valid": VALID}
    todo = {n: v for n, v in names.items() if not _is_current(root / n)}
    if not todo:
        return root
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".embedded-", dir=root))
    try:
        for name, images in todo.items():
            _write_set(work / name, images)
            final = root / name
            if final.exists():  # stale recipe or an interrupted older build: replace it
                old = work / f"old-{name}"
                os.rename(final, old)
            try:
                os.rename(work / name, final)
            except OSError:  # another process put a set there in between
                if not _is_current(final):
                    raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root

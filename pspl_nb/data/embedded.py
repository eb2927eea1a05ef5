"""The offline set: the natural photographs shipped inside scikit-image's wheel, in the standard layout.

Nothing is downloaded: ``skimage.data`` reads these files from the installed package. Three sets, split by
scene so no scene is on two sides (the two stereo_motorcycle views are near duplicates and both train):

- ``embedded_train`` (``TRAIN``): six RGB photographs, whole.
- ``embedded_valid`` (``VALID``): the validation set that scores runs and picks the best checkpoint:
  three RGB photographs and four greyscale ones (stored as R = G = B, scored on Y like every image).
- ``embedded_tune`` (``TUNE``): four more greyscale photographs of other scenes, kept apart as a second
  image set on which the kit replicates its primary claims (``questions.primary_claims(column=...)``).

Validation and tune images are cut into ``TILE`` x ``TILE`` crops (at most ``MAX_TILES`` per photograph,
spread over it), named ``<photo>_<k>``: more, smaller images average the evaluation over more scenes for
the same pixel budget, which shrinks epoch-to-epoch noise of the mean PSNR without making every epoch's
evaluation slower. Synthetic and binary images (colorwheel, logo, checkerboard, horse, ...) and the
images scikit-image fetches from the network are left out.

HR = ``modcrop(image, 12)`` (12 is divisible by 2, 3 and 4, so one HR serves every scale; ``TILE`` is a
multiple of 12 too); LR = MATLAB bicubic of HR, rounded to uint8 (``imresize_uint8``), for X2, X3 and X4.
The retina image is first cut to its central 1008 x 1008 square: the full frame is 23 % black border.
"""
import json
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from pspl_nb.atomic import replace_folder, staging_folder
from pspl_nb.resize import imresize_uint8, modcrop

from .sources import SCALES, resolve_root

MODCROP = 12
TRAIN = ("astronaut", "rocket", "hubble_deep_field", "retina", "motorcycle_left", "motorcycle_right")
VALID = ("chelsea", "coffee", "immunohistochemistry", "camera", "coins", "moon", "grass")
TUNE = ("brick", "gravel", "cell", "clock")
TILE, MAX_TILES = 192, 4
SETS = {"embedded_train": TRAIN, "embedded_valid": VALID, "embedded_tune": TUNE}
TILED = ("embedded_valid", "embedded_tune")
# Bump when the recipe changes, so existing copies are rebuilt instead of silently reused.
RECIPE = {"version": 2, "sets": SETS, "tiled": TILED, "tile": TILE, "max_tiles": MAX_TILES, "modcrop": MODCROP,
          "scales": SCALES, "lr": "imresize_uint8 (MATLAB bicubic, uint8 per pass)", "retina": "central 1008x1008",
          "grey": "R = G = B"}
MARKER = ".embedded.json"


def _load(name: str) -> np.ndarray:
    """One scikit-image photograph as uint8 (H, W, 3); greyscale ones are repeated into three channels."""
    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(skimage.data, name)()
    if name == "retina":
        c = (img.shape[0] - 1008) // 2
        img = img[c : c + 1008, c : c + 1008]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def tiles(img: np.ndarray, size: int = TILE, limit: int = MAX_TILES) -> list[np.ndarray]:
    """Up to ``limit`` non-overlapping ``size`` x ``size`` crops of ``img`` (H, W, C), spread over it.

    The grid has H // size rows and W // size columns, each placed evenly between the borders (so the
    crops also cover the middle of a photograph whose side is not a multiple of ``size``); when the grid
    has more cells than ``limit``, evenly spaced cells are kept, in reading order. An image smaller than
    ``size`` in either side gives no crop.
    """
    rows, cols = img.shape[0] // size, img.shape[1] // size
    tops = [round(r * (img.shape[0] - size) / max(rows - 1, 1)) for r in range(rows)]
    lefts = [round(c * (img.shape[1] - size) / max(cols - 1, 1)) for c in range(cols)]
    cells = [(t, l) for t in tops for l in lefts]
    if len(cells) > limit:
        cells = [cells[round(k * (len(cells) - 1) / (limit - 1))] for k in range(limit)]
    return [img[t : t + size, l : l + size] for t, l in cells]


def images(set_name: str) -> dict[str, np.ndarray]:
    """The HR images of one embedded set: {file stem: uint8 (H, W, 3)}, H and W multiples of ``MODCROP``."""
    out = {}
    for name in SETS[set_name]:
        img = modcrop(_load(name), MODCROP)
        if set_name in TILED:
            out.update({f"{name}_{k}": crop for k, crop in enumerate(tiles(img))})
        else:
            out[name] = img
    return out


def _write_set(folder: Path, set_name: str) -> None:
    (folder / "HR").mkdir(parents=True)
    for stem, hr in images(set_name).items():
        Image.fromarray(hr).save(folder / "HR" / f"{stem}.png", compress_level=1)
        for s in SCALES:
            lr = imresize_uint8(hr, out_shape=(hr.shape[0] // s, hr.shape[1] // s))
            (folder / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(lr).save(folder / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png", compress_level=1)
    (folder / MARKER).write_text(json.dumps(RECIPE, indent=1) + "\n")


def _is_current(folder: Path) -> bool:
    marker = folder / MARKER
    # Compare through JSON so tuples and lists read back equal.
    return marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(RECIPE))


def ensure_embedded(root=None) -> Path:
    """Build ``<root>/embedded_train``, ``embedded_valid`` and ``embedded_tune`` once; returns the data root.

    Idempotent: a set whose marker matches the current recipe is left alone. Atomic: every set is
    written in a temporary folder under ``root`` and renamed into place, so an interrupted build never
    leaves a set that looks complete, and a concurrent builder that loses the race discards its copy.
    Takes a few seconds on one core (3.7 Mpixel of training HR, ~1.4 Mpixel of validation and tune crops).
    """
    root = resolve_root(root)
    todo = [n for n in SETS if not _is_current(root / n)]
    if not todo:
        return root
    with staging_folder(root, "embedded") as work:
        for name in todo:
            _write_set(work / name, name)
            if _is_current(root / name):  # another process built it meanwhile and may be reading it: keep theirs
                continue
            try:
                replace_folder(work / name, root / name)  # over a stale recipe or an interrupted older build
            except OSError:  # another process put a set there in between
                if not _is_current(root / name):
                    raise
    return root

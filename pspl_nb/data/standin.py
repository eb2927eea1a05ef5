"""A DIV2K-shaped stand-in: synthetic data with the real sets' names, sizes and layout, for rehearsing
the GPU path (loading, caching, memory, throughput) on a machine with no network. It is NOT DIV2K: numbers
measured on it say nothing about the paper.

What is faithful: DIV2K_train holds 0001.png, 0002.png, ... and DIV2K_valid 0801.png, ... (the first
``train`` / ``valid`` of them), 2040 pixels wide with heights DIV2K uses; Set5, Set14, B100 and Urban100
hold their real file names at their real sizes (B100's orientation is known for 68 of its 100 images, the
other 32 are taken as landscape, 481 x 321); LR images are made as the real ones are: MATLAB bicubic
(``imresize_uint8``) of the HR cropped to a multiple of the scale, rounded to uint8.
What is not: the pixels. Each image is cut from one of scikit-image's photographs, mirror-tiled to size
(training images from ``embedded.TRAIN``, the rest from ``embedded.VALID``), chosen and placed by a seeded
generator, so the same arguments give the same bytes.

Every set folder carries ``.standin.json`` (its recipe and the command that rebuilds it), which
``is_standin``, ``inventory()`` and ``verify`` read, and which a real download deletes along with the set.
"""
import json
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from pspl_nb.atomic import replace_folder, staging_folder
from pspl_nb.config import TEST_SETS
from pspl_nb.resize import imresize_uint8, modcrop

from . import embedded
from .sources import SCALES, STANDIN_MARKER, resolve_root, set_name

VERSION = 1  # bump when the recipe changes, so existing stand-ins are rebuilt instead of reused
DIV2K_WIDTH = 2040
DIV2K_HEIGHTS = (1356, 1344, 1404, 1152, 1536)  # common DIV2K heights; with 2040, multiples of 12 (x2, x3, x4 exact)

# Real (width, height) in pixels of every benchmark image, in file-name order.
_URBAN100 = """
1024x644 1024x768 1024x680 1024x680 1024x768 1024x1024 1024x680 1024x572 1024x796 1024x816 564x1024 1024x768
1024x764 1024x1024 1024x772 1024x1024 1024x692 1024x768 1024x680 1280x960 796x1200 1024x680 1024x1024 1024x660
1024x736 1024x768 1024x832 1024x680 1024x676 680x1024 1024x680 1024x680 1024x680 1024x680 1024x688 700x1024
740x1024 768x1024 768x1024 1024x576 1024x680 1024x680 1024x672 1024x680 1024x768 692x1024 1024x616 684x1024
1024x680 680x1024 1024x680 1024x680 1024x656 1024x680 1024x768 1024x768 1024x724 1024x692 1024x664 1024x680
1024x672 1024x680 1000x980 1024x680 1024x680 1024x864 1024x680 1024x1024 1200x824 1024x768 1024x768 680x1024
1024x764 680x1024 1024x680 1024x676 1024x680 1024x732 1024x768 776x1036 1024x1024 1024x1024 1004x1024 1024x1024
1024x676 1024x768 1024x1024 1024x672 768x1024 1024x680 1024x680 1024x692 1024x768 1024x768 1024x768 1024x768
1024x680 1024x680 1024x804 1024x1024""".split()
_B100 = """
3096 8023 12084 14037 16077 19021 21077 24077 33039 37073 38082 38092 41033 41069 42012 42049 43074 45096 54082
55073 58060 62096 65033 66053 69015 69020 69040 76053 78004 85048 86000 86016 86068 87046 89072 97033 101085
101087 102061 103070 105025 106024 108005 108070 108082 109053 119082 123074 126007 130026 134035 143090 145086
147091 148026 148089 156065 157055 159008 160068 163085 167062 167083 170057 175032 175043 182053 189080 196073
197017 208001 210088 216081 219090 220075 223061 227092 229036 236037 241004 241048 253027 253055 260058 271035
285079 291000 295087 296007 296059 299086 300091 302008 304034 304074 306005 351093 361010 376043 385039""".split()
_B100_PORTRAIT = set("""101085 101087 102061 148026 167083 175032 189080 208001 210088 227092 271035 285079
302008 304074 33039""".split())
BENCHMARK_SIZES = {
    "Set5": {"baby": (512, 512), "bird": (288, 288), "butterfly": (256, 256), "head": (280, 280),
             "woman": (228, 344)},
    "Set14": {"baboon": (500, 480), "barbara": (720, 576), "bridge": (512, 512), "coastguard": (352, 288),
              "comic": (250, 361), "face": (276, 276), "flowers": (500, 362), "foreman": (352, 288),
              "lenna": (512, 512), "man": (512, 512), "monarch": (768, 512), "pepper": (512, 512),
              "ppt3": (529, 656), "zebra": (586, 391)},
    "B100": {s: (321, 481) if s in _B100_PORTRAIT else (481, 321) for s in sorted(_B100)},
    "Urban100": {f"img_{i:03d}": tuple(map(int, wh.split("x"))) for i, wh in enumerate(_URBAN100, 1)},
}
_SET_INDEX = {name: i for i, name in enumerate(("DIV2K_train", "DIV2K_valid", *TEST_SETS))}  # seeds the streams


def is_standin(name: str, root=None) -> bool:
    """True when set ``name`` (a set Name or dataset key) under the data root is a synthetic stand-in."""
    return (resolve_root(root) / set_name(name) / STANDIN_MARKER).is_file()


def _plan(name: str, count: int) -> dict[str, tuple[int, int]]:
    """{file stem: (height, width)} of the first ``count`` images of stand-in set ``name``."""
    if name in BENCHMARK_SIZES:
        return {stem: (h, w) for stem, (w, h) in list(BENCHMARK_SIZES[name].items())[:count]}
    first = 1 if name == "DIV2K_train" else 801
    return {f"{first + i:04d}": (DIV2K_HEIGHTS[i % len(DIV2K_HEIGHTS)], DIV2K_WIDTH) for i in range(count)}


def _canvas(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (h, w, 3): ``photo`` (H, W, 3) tiled with mirror copies (seamless), cut at a random offset."""
    if rng.integers(2):
        photo = photo.transpose(1, 0, 2)
    tile = np.concatenate([np.concatenate([photo, photo[:, ::-1]], 1),
                           np.concatenate([photo[::-1], photo[::-1, ::-1]], 1)], 0)
    y, x = int(rng.integers(tile.shape[0])), int(rng.integers(tile.shape[1]))
    reps = (-(-(y + h) // tile.shape[0]), -(-(x + w) // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[y : y + h, x : x + w])


def _write_set(folder: Path, name: str, plan: dict, seed: int, photos: dict[str, np.ndarray]) -> None:
    (folder / "HR").mkdir(parents=True)
    for s in SCALES:
        (folder / "LR_bicubic" / f"X{s}").mkdir(parents=True)
    names = sorted(photos)

    def write(job: tuple[int, tuple[str, tuple[int, int]]]) -> None:
        i, (stem, (h, w)) = job
        rng = np.random.default_rng((seed, _SET_INDEX[name], i))  # image i is the same whatever the count
        hr = _canvas(photos[names[int(rng.integers(len(names)))]], h, w, rng)
        Image.fromarray(hr).save(folder / "HR" / f"{stem}.png", compress_level=1)
        for s in SCALES:
            crop = modcrop(hr, s)
            lr = imresize_uint8(crop, out_shape=(crop.shape[0] // s, crop.shape[1] // s))
            Image.fromarray(lr).save(folder / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png", compress_level=1)

    # Threads: the resize matmuls and zlib release the GIL, so images are made on every core at once.
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, enumerate(plan.items())))


def _recipe(name: str, count: int, seed: int) -> dict:
    photos = embedded.TRAIN if name == "DIV2K_train" else embedded.VALID
    return {"standin": "synthetic data shaped like the real set; NOT the real images", "version": VERSION,
            "set": name, "images": count, "seed": seed, "photos": list(photos),
            "lr": "imresize_uint8 (MATLAB bicubic) of modcrop(HR, s), s in 2, 3, 4"}


def _read_marker(folder: Path) -> dict | None:
    marker = folder / STANDIN_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def build_standin(root, train: int = 800, valid: int = 100, benchmarks: bool = True, counts: int | None = None,
                  seed: int = 0, force: bool = False) -> Path:
    """Write the stand-in sets under ``root`` in the kit's layout; returns ``root``.

    Args:
        root: data root to write into (a separate folder is best: point ``PSPL_DATA`` at it to use it).
        train, valid: images of DIV2K_train (0001.png, ...) and DIV2K_valid (0801.png, ...), HR 2040 px wide.
        benchmarks: also write Set5, Set14, B100 and Urban100.
        counts: keep only the first ``counts`` images of each benchmark (None: all of them).
        seed: non-negative int; the same arguments give identical files.
        force: rebuild sets whose marker already matches (the repair for a damaged image).

    Idempotent: a set whose ``.standin.json`` recipe matches is left alone. Atomic: each set is written in
    a temporary folder under ``root`` and renamed into place. Raises FileExistsError naming the folder when
    a set there holds real data (no marker): a stand-in never overwrites it. Cost: ~1.5 s per DIV2K image
    on one core (the MATLAB bicubic of 2K images dominates), ~0.1 s per benchmark image.
    """
    root = resolve_root(root)
    for arg, value in (("train", train), ("valid", valid), ("seed", seed), ("counts", counts or 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{arg} must be a non-negative int, got {value!r}")
    sizes = {"DIV2K_train": train, "DIV2K_valid": valid}
    if benchmarks:
        sizes.update({n: len(BENCHMARK_SIZES[n]) if counts is None else min(counts, len(BENCHMARK_SIZES[n]))
                      for n in TEST_SETS})
    todo = {n: c for n, c in sizes.items() if c and (force or (_read_marker(root / n) or {}).get("recipe")
                                                     != _recipe(n, c, seed))}
    for name in todo:
        if (root / name / "HR").exists() and _read_marker(root / name) is None:
            raise FileExistsError(f"{root / name} holds data that is not a stand-in; build the stand-in under "
                                  "another --root")
    if not todo:
        return root
    with staging_folder(root, "standin") as work:
        photos = {}
        for name, count in todo.items():
            recipe = _recipe(name, count, seed)
            for p in recipe["photos"]:
                if p not in photos:
                    photos[p] = embedded._load(p)
            _write_set(work / name, name, _plan(name, count), seed, {p: photos[p] for p in recipe["photos"]})
            # The command rebuilds this set alone (the four benchmarks share one count, so they go together).
            only = {"DIV2K_train": f"--train {count} --valid 0 --no-benchmarks",
                    "DIV2K_valid": f"--train 0 --valid {count} --no-benchmarks"}.get(
                name, "--train 0 --valid 0" + ("" if counts is None else f" --bench-count {counts}"))
            marker = {"recipe": recipe, "rebuild": f"python -m pspl_nb.data standin --root {shlex.quote(str(root))} "
                                                   f"{only} --seed {seed} --force"}
            (work / name / STANDIN_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
            replace_folder(work / name, root / name)
    return root


def rebuild_command(name: str, root=None) -> str | None:
    """The command that rebuilds stand-in set ``name`` where it is now (its marker's command, with ``--root``
    pointing at ``root`` even if the stand-in was moved since it was built), None when it is not a stand-in."""
    root = resolve_root(root)
    marker = _read_marker(root / set_name(name))
    if not marker:
        return None
    words = shlex.split(marker["rebuild"])
    if "--root" in words:
        words[words.index("--root") + 1] = str(root)
    return shlex.join(words)

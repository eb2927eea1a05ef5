"""Where the data lives: the data root, the one folder layout, and the registry of downloadable sources.

Layout under the data root (every source is normalised into it, see ``download.py``)::

    <root>/<Name>/HR/<stem>.png
    <root>/<Name>/LR_bicubic/X{s}/<stem>x{s}.png
    <root>/weights/<file>.pt

Names: DIV2K_train (0001-0800), DIV2K_valid (0801-0900), Set5, Set14, B100, Urban100, embedded_train,
embedded_valid. Sizes and sha256 of DIV2K are the ones the DIV2K site publishes; the benchmark tarballs and
the EDSR files publish none, so they are pinned on first download (``<root>/checksums.json``); EDSR's
benchmark.tar is also checked against the md5 a peer library's download code states.

Every source has a list of base URLs, tried in order; all of them must deliver the same bytes, since one
sha256 checks them all. A set folder holding ``STANDIN_MARKER`` is a synthetic stand-in (``standin.py``).
"""
import os
from dataclasses import dataclass
from pathlib import Path

from pspl_nb.config import TEST_SETS
from pspl_nb.places import data_root

SET_NAMES = ("DIV2K_train", "DIV2K_valid", *TEST_SETS, "embedded_train", "embedded_valid", "embedded_tune")
# What users type -> (training set, validation set).
DATASET_KEYS = {"div2k": ("DIV2K_train", "DIV2K_valid"), "embedded": ("embedded_train", "embedded_valid")}
SCALES = (2, 3, 4)

# Base URLs, tried in order, read when a download starts so a test (or a user's mirror) can redirect them:
# assign BASE_URLS["div2k"] = ["http://127.0.0.1:8000/", ...] or set PSPL_URL_DIV2K, PSPL_URL_HF, PSPL_URL_EDSR
# (several bases separated by spaces). The second DIV2K base is a Hugging Face copy of the eight zips under
# their original names; its LFS records give the same sizes and sha256 as the DIV2K site.
BASE_URLS = {
    "div2k": ["https://data.vision.ee.ethz.ch/cvl/DIV2K/",
              "https://huggingface.co/datasets/goodfellowliu/DIV2K/resolve/main/"],
    "hf": ["https://huggingface.co/datasets/eugenesiow/"],
    "edsr": ["https://cv.snu.ac.kr/research/EDSR/"],
}
# Images a complete copy of each set holds (the embedded sets are counted from ``embedded.py``).
EXPECTED_IMAGES = {"DIV2K_train": 800, "DIV2K_valid": 100, "Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}
STANDIN_MARKER = ".standin.json"  # in a set folder: synthetic stand-in data, not the real set


def base_urls(base: str) -> list[str]:
    """Base URLs of ``base`` ("div2k", "hf", "edsr") in the order tried: ``$PSPL_URL_<BASE>`` if set, else
    ``BASE_URLS[base]`` (a single string counts as a one-item list)."""
    bases = os.environ.get(f"PSPL_URL_{base.upper()}", "").split() or BASE_URLS[base]
    return [bases] if isinstance(bases, str) else list(bases)


def resolve_root(root=None) -> Path:
    """``root`` as a Path, or ``places.data_root()`` when None."""
    return data_root() if root is None else Path(root).expanduser()


@dataclass(frozen=True)
class Source:
    """One downloadable file and where its content goes.

    key: registry name (also the checksum key); base: key of ``BASE_URLS``; path: URL part after each base;
    dest: folder under the data root ("" for EDSR's benchmark.tar, which holds four sets);
    content: "HR", "LR" (then ``scale``), "benchmark" (EDSR layout, several sets) or "weights" (kept as is);
    sha256 / size: published values, None when nothing is published (trust on first download);
    sha256_prefix: leading hex digits of the sha256 given in the file name (torch.hub convention);
    md5: an md5 a peer's download code publishes, checked besides the sha256 pinned on first download.
    """

    key: str
    base: str
    path: str
    dest: str
    content: str
    scale: int | None = None
    sha256: str | None = None
    size: int | None = None
    sha256_prefix: str | None = None
    md5: str | None = None

    @property
    def urls(self) -> list[str]:
        """Full URLs in the order tried, from the bases in force now (see ``base_urls``)."""
        return [base.rstrip("/") + "/" + self.path for base in base_urls(self.base)]

    @property
    def url(self) -> str:
        """The first of ``urls``: the original host."""
        return self.urls[0]

    @property
    def filename(self) -> str:
        """Last part of the URL path, the name the download is stored under."""
        return self.path.rsplit("/", 1)[-1]


_DIV2K = {  # file stem -> (bytes, sha256), as published on the DIV2K site
    "DIV2K_train_HR": (3530603713, "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
    "DIV2K_train_LR_bicubic_X2": (925390592, "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850"),
    "DIV2K_train_LR_bicubic_X3": (427847282, "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a"),
    "DIV2K_train_LR_bicubic_X4": (246914039, "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a"),
    "DIV2K_valid_HR": (448993893, "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
    "DIV2K_valid_LR_bicubic_X2": (117763600, "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57"),
    "DIV2K_valid_LR_bicubic_X3": (54513392, "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3"),
    "DIV2K_valid_LR_bicubic_X4": (31505881, "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553"),
}
BENCHMARK_TAR_MD5 = "4ace41d33c2384b97e6b320cd0afd6ba"
_HF_NAMES = {"Set5": "Set5", "Set14": "Set14", "B100": "BSD100", "Urban100": "Urban100"}  # ours -> theirs
_WEIGHTS = {2: "edsr_baseline_x2-1bc95232.pt", 3: "edsr_baseline_x3-abf2a44e.pt", 4: "edsr_baseline_x4-6b446fab.pt"}


def _registry() -> dict[str, Source]:
    out = []
    for stem, (size, sha) in _DIV2K.items():
        dest = stem[: len("DIV2K_train")]
        scale = int(stem[-1]) if "_LR_" in stem else None
        out.append(Source(stem, "div2k", stem + ".zip", dest, "LR" if scale else "HR", scale, sha, size))
    for name, hf in _HF_NAMES.items():
        out.append(Source(f"{name}_HR", "hf", f"{hf}/resolve/main/data/{hf}_HR.tar.gz", name, "HR"))
        for s in SCALES:
            out.append(Source(f"{name}_LR_x{s}", "hf", f"{hf}/resolve/main/data/{hf}_LR_x{s}.tar.gz", name, "LR", s))
    # md5 of benchmark.tar as torchSR's download code checks it (Coloquinte/torchSR, torchsr/datasets/benchmarks.py)
    out.append(Source("benchmark_edsr", "edsr", "benchmark.tar", "", "benchmark", md5=BENCHMARK_TAR_MD5))
    for s, fname in _WEIGHTS.items():
        prefix = fname.rsplit("-", 1)[1].split(".")[0]
        out.append(Source(f"edsr_baseline_x{s}", "edsr", "models/" + fname, "weights", "weights", s,
                          sha256_prefix=prefix))
    return {src.key: src for src in out}


SOURCES: dict[str, Source] = _registry()

# Groups accepted by ``fetch`` and the command line; "embedded" is built locally, never downloaded.
GROUPS = {
    "div2k": [k for k in SOURCES if k.startswith("DIV2K_")],
    "benchmarks": [k for k in SOURCES if SOURCES[k].base == "hf"],
    "benchmarks_edsr": ["benchmark_edsr"],  # the alternative: one ~250 MB tar with all four sets
    "weights": [k for k in SOURCES if SOURCES[k].content == "weights"],
}
GROUPS["all"] = GROUPS["div2k"] + GROUPS["benchmarks"] + GROUPS["weights"]
for _name in TEST_SETS + ("DIV2K_train", "DIV2K_valid"):
    GROUPS[_name] = [k for k, s in SOURCES.items() if s.dest == _name]


def set_name(name: str, split: str = "train") -> str:
    """Folder name for a dataset key ("div2k", "embedded"; ``split`` picks train or valid) or a set Name.

    "BSD100" is accepted for "B100". Raises ValueError naming ``name`` when it is neither.
    """
    if name.lower() in DATASET_KEYS:
        return DATASET_KEYS[name.lower()][0 if split == "train" else 1]
    if name == "BSD100":
        return "B100"
    if name in SET_NAMES:
        return name
    raise ValueError(f"unknown dataset {name!r}: expected one of {sorted(DATASET_KEYS)} or {list(SET_NAMES)}")

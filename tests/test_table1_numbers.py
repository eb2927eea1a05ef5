"""No page or notebook states a number of the paper's Table 1 (or of the published tables beside it) that differs
from the tables the kit keeps in ``pspl_nb.published``: its cells, the gains read from them, the ranges and counts
the prose draws from them."""
import json
import re
from pathlib import Path

import pytest

from pspl_nb.config import TEST_SETS as SETS
from pspl_nb.published import _T1, PUBLISHED

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = {"SRCNN": "srcnn", "VDSR": "vdsr", "DRRN": "drrn", "LapSRN": "lapsrn", "EDSR": "edsr",
               "EDSR-baseline": "edsr_baseline", "Bicubic": "bicubic", "EDSR (32x256)": "edsr"}
GAINS = {(m, s): round(v[2] - v[0], 2) for m, sets in _T1.items() for s, v in sets.items()}
SSIM_GAINS = {(m, s): round(v[3] - v[1], 4) for m, sets in _T1.items() for s, v in sets.items()}


def texts() -> dict:
    """{name: prose} of every page and of every notebook's Markdown cells."""
    out = {str(p.relative_to(ROOT)): p.read_text() for p in
           [ROOT / "README.md", ROOT / "data" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        out[str(nb.relative_to(ROOT))] = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return out


TEXTS = texts()


def pairs(cell: str) -> tuple[float, float]:
    """``"30.48 / .8628"`` -> (30.48, 0.8628)."""
    psnr, ssim = (float(v) for v in cell.split("/"))
    return psnr, ssim


def table_rows(text: str):
    """Markdown table rows, each a list of stripped cells, with the header row of their table."""
    header = None
    for line in text.splitlines():
        line = line.strip()  # a table may sit inside a list item
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            continue
        if header is None:
            header = cells
            continue
        yield header, cells


def test_every_table1_table_matches_the_kits_copy():
    checked = 0
    for name, text in TEXTS.items():
        current = None
        for header, row in table_rows(text):
            if [h for h in header if h in MODEL_NAMES][:5] != ["SRCNN", "VDSR", "DRRN", "LapSRN", "EDSR"]:
                continue
            if row[1] not in ("baseline", "PSPL"):
                continue
            current = row[0] or current
            models = [MODEL_NAMES[h] for h in header if h in MODEL_NAMES]
            for model, cell in zip(models, row[2:]):
                base_p, base_s, pspl_p, pspl_s = _T1[model][current]
                expected = (base_p, base_s) if row[1] == "baseline" else (pspl_p, pspl_s)
                assert pairs(cell) == expected, f"{name}: Table 1, {model} on {current} ({row[1]}) is {cell}"
                checked += 1
    assert checked == 40  # docs/numbers.md: both rows of every model and set


def test_every_published_table_matches_the_kits_copy():
    checked = 0
    for name, text in TEXTS.items():
        for header, row in table_rows(text):
            scale = {"x2": 2, "x4": 4}.get(header[0])
            if scale is None or header[1:5] != list(SETS) or row[0] not in MODEL_NAMES:
                continue
            for set_name, cell, expected in zip(SETS, row[1:5], PUBLISHED[scale][MODEL_NAMES[row[0]]]):
                assert pairs(cell) == expected, f"{name}: published x{scale}, {row[0]} on {set_name} is {cell}"
                checked += 1
    assert checked >= 4 * 13


def test_the_cells_said_to_differ_from_the_published_ones_are_stated_right():
    rows = [row for header, row in table_rows(TEXTS["docs/numbers.md"]) if header[:2] == ["cell", "Table 1 baseline"]]
    assert rows
    for cell, table1, published in rows:
        model, set_name = (s.strip() for s in cell.split(","))
        model = MODEL_NAMES[model]
        assert pairs(table1) == _T1[model][set_name][:2], cell
        assert pairs(published) == PUBLISHED[4][model][SETS.index(set_name)], cell
        assert pairs(table1) != pairs(published), f"{cell} does not differ"
    same = sum(_T1[m][s][:2] == PUBLISHED[4][m][SETS.index(s)] for m in _T1 for s in SETS)
    assert len(rows) == 20 - same


def paragraphs(text: str):
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def about_table1(paragraph: str) -> bool:
    return "Table 1" in paragraph or bool(re.search(r"\bgains?\b", paragraph))


def test_gains_and_ranges_drawn_from_table1_are_its_own():
    """Every gain range "a to b" in a paragraph about Table 1 has ends that are gains of Table 1 (PSNR ranges end
    in dB, SSIM ranges have three or more decimals); a range that names no set and no count of cells spans
    them all; "N of (its|the) 20 cells" higher, and "<model> on <set>: <gain>" agree with the table."""
    found = 0
    for name, text in TEXTS.items():
        for para in paragraphs(text):
            if not about_table1(para):
                continue
            for m in re.finditer(r"([+-]?\d+\.\d+) to ([+-]?\d+\.\d+)( dB)?", para):
                lo, hi, db = m.group(1), m.group(2), m.group(3)
                decimals = len(lo.split(".")[1])
                if not db and decimals < 3:
                    continue  # neither a PSNR range (dB) nor an SSIM one (three decimals or more)
                pool = GAINS if db else SSIM_GAINS
                values = {round(v, decimals) for v in pool.values()}
                for end in (lo, hi):
                    assert round(float(end), decimals) in values, f"{name}: {m.group(0)}: {end} is no gain of Table 1"
                sentence = para[para.rfind(".", 0, m.start()) + 1: para.find(".", m.end()) + 1 or len(para)]
                qualified = re.search(r"|".join(SETS) + r"|elsewhere|\d+ of (?:its|the) 20", sentence)
                if db and not qualified:
                    span = (round(min(pool.values()), decimals), round(max(pool.values()), decimals))
                    assert (float(lo), float(hi)) == span, f"{name}: {m.group(0)} for all of Table 1; it spans {span}"
                found += 1
            for m in re.finditer(r"(\d+) of (?:its|the) 20 (?:PSNR )?cells", para):
                if re.search(r"higher|gain|wins|better", para[m.start() - 80: m.end() + 40]):
                    assert int(m.group(1)) == sum(g > 0 for g in GAINS.values()), f"{name}: {m.group(0)}"
            for m in re.finditer(r"(SRCNN|VDSR|DRRN|LapSRN|EDSR) on (Set5|Set14|B100|Urban100)\W{0,3}([+-]\d+\.\d+)", para):
                assert float(m.group(3)) == GAINS[(MODEL_NAMES[m.group(1)], m.group(2))], f"{name}: {m.group(0)}"
    assert found >= 5


@pytest.mark.parametrize("wrong", ["PSPL wins everywhere, by 0.05 to 0.9 dB.", "gains of +0.05 to +0.92 dB",
                                   "Table 1: SRCNN on B100 +0.80 dB and more."])
def test_the_check_catches_the_slips_it_exists_for(wrong, monkeypatch):
    monkeypatch.setitem(TEXTS, "probe", f"The paper's Table 1. {wrong}")
    if "SRCNN on B100" in wrong:
        monkeypatch.setitem(TEXTS, "probe", "Table 1 says SRCNN on B100: +0.80 dB.")
    with pytest.raises(AssertionError):
        test_gains_and_ranges_drawn_from_table1_are_its_own()

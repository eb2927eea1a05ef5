"""The DIV2K-shaped stand-in: real names and sizes, official LR, a marker on every set, idempotent builds."""
import json
import shlex
import time

import numpy as np
import pytest
from PIL import Image

from pspl_nb.data import build_standin, inventory, is_standin, repair_command, standin, verify
from pspl_nb.data.__main__ import main as cli_main
from pspl_nb.config import TEST_SETS
from pspl_nb.data.sources import STANDIN_MARKER
from pspl_nb.resize import imresize_uint8, modcrop


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One training image, one validation image, the first four of each benchmark (~5 s of CPU)."""
    path = tmp_path_factory.mktemp("standin")
    build_standin(path, train=1, valid=1, counts=4)
    return path


def size(path):
    with Image.open(path) as img:
        return img.size  # (W, H)


def test_layout_names_and_sizes(root):
    assert sorted(p.name for p in root.iterdir()) == sorted(["DIV2K_train", "DIV2K_valid", *TEST_SETS])
    names = {n: sorted(p.stem for p in (root / n / "HR").glob("*.png")) for n in ["DIV2K_train", "DIV2K_valid",
                                                                                 *TEST_SETS]}
    assert names == {"DIV2K_train": ["0001"], "DIV2K_valid": ["0801"], "Set5": ["baby", "bird", "butterfly", "head"],
                     "Set14": ["baboon", "barbara", "bridge", "coastguard"],
                     "B100": ["101085", "101087", "102061", "103070"], "Urban100": [f"img_00{i}" for i in range(1, 5)]}
    for path in (root / "DIV2K_train/HR/0001.png", root / "DIV2K_valid/HR/0801.png"):
        w, h = size(path)
        assert w == 2040 and h in standin.DIV2K_HEIGHTS and h % 12 == 0
    assert size(root / "Set5/HR/baby.png") == (512, 512) and size(root / "Set14/HR/barbara.png") == (720, 576)
    assert size(root / "B100/HR/101085.png") == (321, 481) and size(root / "B100/HR/103070.png") == (481, 321)
    assert size(root / "Urban100/HR/img_001.png") == (1024, 644)
    assert len(standin.BENCHMARK_SIZES["B100"]) == 100 and len(standin.BENCHMARK_SIZES["Urban100"]) == 100
    assert standin.BENCHMARK_SIZES["Set5"]["woman"] == (228, 344) and len(standin.BENCHMARK_SIZES["Set14"]) == 14


def test_lr_is_matlab_bicubic_of_the_modcropped_hr(root):
    for name in ["DIV2K_train", "DIV2K_valid", *TEST_SETS]:
        for hr_path in (root / name / "HR").glob("*.png"):
            w, h = size(hr_path)
            for s in (2, 3, 4):
                assert size(root / name / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png") == (w // s, h // s)
    hr = np.asarray(Image.open(root / "Set5/HR/bird.png"))
    lr = np.asarray(Image.open(root / "Set5/LR_bicubic/X3/birdx3.png"))
    assert np.array_equal(lr, imresize_uint8(modcrop(hr, 3), out_shape=(96, 96)))
    hr = np.asarray(Image.open(root / "DIV2K_valid/HR/0801.png"))
    lr = np.asarray(Image.open(root / "DIV2K_valid/LR_bicubic/X4/0801x4.png"))
    assert np.array_equal(lr, imresize_uint8(hr, out_shape=(hr.shape[0] // 4, 510)))
    hr = np.asarray(Image.open(root / "Urban100/HR/img_001.png"))  # 644 rows: modcrop to 642 for x3
    lr = np.asarray(Image.open(root / "Urban100/LR_bicubic/X3/img_001x3.png"))
    assert lr.shape == (214, 341, 3) and np.array_equal(lr, imresize_uint8(hr[:642, :1023], out_shape=(214, 341)))


def test_every_set_is_marked_and_inventory_shows_it(root):
    for name in ["DIV2K_train", "DIV2K_valid", *TEST_SETS]:
        marker = json.loads((root / name / STANDIN_MARKER).read_text())
        assert is_standin(name, root) and marker["recipe"]["set"] == name and "NOT" in marker["recipe"]["standin"]
    assert is_standin("div2k", root) and not is_standin("embedded", root)
    table = inventory(root)
    assert table.loc["DIV2K_train", "standin"] and not table.loc["embedded_train", "standin"]
    checks = verify(None, root)
    assert all(c.ok and "STAND-IN" in c.line for c in checks) and len(checks) == 6


def test_same_arguments_same_bytes_and_first_k_do_not_depend_on_k(root, tmp_path):
    build_standin(tmp_path, train=0, valid=0, counts=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(TEST_SETS)
    assert (tmp_path / "Set5/HR/baby.png").read_bytes() == (root / "Set5/HR/baby.png").read_bytes()


def test_idempotent_and_rebuilds_only_a_stale_set(tmp_path):
    build_standin(tmp_path, train=0, valid=0, counts=1)
    stamps = {n: (tmp_path / n / STANDIN_MARKER).stat().st_mtime_ns for n in TEST_SETS}
    start = time.monotonic()
    build_standin(tmp_path, train=0, valid=0, counts=1)
    assert time.monotonic() - start < 0.5
    assert stamps == {n: (tmp_path / n / STANDIN_MARKER).stat().st_mtime_ns for n in TEST_SETS}
    marker = json.loads((tmp_path / "Set14" / STANDIN_MARKER).read_text())
    marker["recipe"]["version"] = 0  # built by an older recipe
    (tmp_path / "Set14" / STANDIN_MARKER).write_text(json.dumps(marker))
    build_standin(tmp_path, train=0, valid=0, counts=1)
    after = {n: (tmp_path / n / STANDIN_MARKER).stat().st_mtime_ns for n in TEST_SETS}
    assert [n for n in TEST_SETS if after[n] != stamps[n]] == ["Set14"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_damaged_standin_is_repaired_by_its_rebuild_command(root, tmp_path, capsys):
    assert cli_main(["standin", "--root", str(tmp_path), "--train", "0", "--valid", "0", "--bench-count", "1"]) == 0
    assert "not DIV2K" in capsys.readouterr().out
    bad = tmp_path / "Set5/HR/baby.png"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    (check,) = verify(["Set5"], tmp_path)
    command = repair_command("Set5", tmp_path)
    assert not check.ok and command in check.line and command.endswith("--valid 0 --bench-count 1 --seed 0 --force")
    assert repair_command("DIV2K_valid", root).endswith("--train 0 --valid 1 --no-benchmarks --seed 0 --force")
    assert cli_main(shlex.split(command)[3:]) == 0  # the command, minus "python -m pspl_nb.data"
    assert bad.read_bytes() == good and verify(["Set5"], tmp_path)[0].ok


def test_never_overwrites_real_data(tmp_path):
    (tmp_path / "Set5/HR").mkdir(parents=True)
    (tmp_path / "Set5/HR/baby.png").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="Set5 holds data that is not a stand-in"):
        build_standin(tmp_path, train=0, valid=0, counts=1)
    assert (tmp_path / "Set5/HR/baby.png").read_bytes() == b"real"
    with pytest.raises(ValueError, match="train must be a non-negative int, got -1"):
        build_standin(tmp_path, train=-1)


def test_a_moved_standin_is_repaired_where_it_is_now(tmp_path):
    build_standin(tmp_path / "old", train=0, valid=0, counts=1)
    (tmp_path / "old").rename(tmp_path / "new")
    command = repair_command("Set5", tmp_path / "new")
    assert f"--root {tmp_path / 'new'} " in command and str(tmp_path / "old") not in command
    bad = tmp_path / "new/Set5/HR/baby.png"
    good = bad.read_bytes()
    bad.write_bytes(good[:100])
    assert cli_main(shlex.split(command)[3:]) == 0
    assert bad.read_bytes() == good and not (tmp_path / "old").exists()

"""Damaged images name themselves and their repair; ``verify`` checks decoding, LR sizes and image counts."""
import numpy as np
import pytest
from PIL import Image

from pspl_nb.data import DamagedImageError, TrainPatches, embedded, load_eval_set, read_rgb, repair_command, verify
from pspl_nb.data.__main__ import main as cli_main

SET5 = {"baby": (24, 24), "bird": (18, 18), "butterfly": (16, 16), "head": (20, 20), "woman": (22, 14)}  # (H, W)


def write_set(root, name, sizes: dict, scales=(2, 3, 4)):
    """A set of random images in the layout: HR (H, W) and LR (H // s, W // s) for each scale."""
    rng = np.random.default_rng(0)
    (root / name / "HR").mkdir(parents=True)
    for stem, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / "HR" / f"{stem}.png")
        for s in scales:
            (root / name / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            lr = rng.integers(0, 256, (h // s, w // s, 3), dtype=np.uint8)
            Image.fromarray(lr).save(root / name / "LR_bicubic" / f"X{s}" / f"{stem}x{s}.png")


def truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def root(tmp_path):
    write_set(tmp_path, "Set5", SET5)
    return tmp_path


def test_intact_set_verifies(root, capsys):
    (check,) = verify(["Set5"], root)
    assert check.ok and check.line.split() == ["Set5", "ok", "5", "images,", "LR", "x2", "x3", "x4"]
    assert cli_main(["verify", "--root", str(root)]) == 0
    assert capsys.readouterr().out.startswith("Set5 ")


def test_truncated_png_is_named_with_its_repair(root):
    bad = root / "Set5/HR/baby.png"
    truncate(bad)
    with pytest.raises(DamagedImageError) as err:
        read_rgb(bad)
    msg = str(err.value)
    assert isinstance(err.value, OSError) and "\n" not in msg
    assert str(bad) in msg and "truncated" in msg
    assert f"python -m pspl_nb.data fetch Set5 --force --root {root}" in msg
    with pytest.raises(DamagedImageError, match="baby.png"):
        load_eval_set("Set5", 2, root=root)
    with pytest.raises(FileNotFoundError):  # a missing file is not "damaged"
        read_rgb(root / "Set5/HR/nothere.png")


def test_verify_reports_damage_and_exits_1(root, capsys):
    truncate(root / "Set5/HR/baby.png")
    (root / "Set5/LR_bicubic/X3/birdx3.png").write_bytes(b"")
    (check,) = verify(["Set5"], root)
    assert not check.ok and "\n" not in check.line
    assert "DAMAGED" in check.line and "HR/baby.png does not decode" in check.line and "(+1 more)" in check.line
    assert check.line.endswith(f"repair with `{repair_command('Set5', root)}`")
    assert cli_main(["verify", "Set5", "--root", str(root)]) == 1
    assert "HR/baby.png" in capsys.readouterr().out


def test_verify_checks_lr_sizes_missing_files_and_counts(root):
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "Set5/LR_bicubic/X2/headx2.png")
    (check,) = verify(["Set5"], root)
    assert "LR_bicubic/X2/headx2.png is 5x5, expected 10x10 (HR 20x20 // 2)" in check.line
    (root / "Set5/LR_bicubic/X2/headx2.png").unlink()
    assert "LR_bicubic/X2/headx2.png is missing" in verify(["Set5"], root)[0].line
    for s in (2, 3, 4):
        (root / f"Set5/LR_bicubic/X{s}/headx{s}.png").unlink(missing_ok=True)
    (root / "Set5/HR/head.png").unlink()
    assert "4 HR images, expected 5" in verify(["Set5"], root)[0].line


def test_verify_names_missing_sets(root):
    checks = verify(["Set5", "benchmarks"], root)
    assert [c.name for c in checks] == ["Set5", "Set14", "B100", "Urban100"]  # each set once
    assert [c.ok for c in checks] == [True, False, False, False] and "missing" in checks[1].line


def test_damaged_training_image_names_the_file_and_leaves_no_cache(tmp_path):
    write_set(tmp_path, "DIV2K_train", {f"{i:04d}": (48, 48) for i in range(1, 4)}, scales=(2,))
    truncate(tmp_path / "DIV2K_train/LR_bicubic/X2/0002x2.png")
    with pytest.raises(DamagedImageError) as err:
        TrainPatches("div2k", 2, 8, 4, root=tmp_path)
    assert "0002x2.png" in str(err.value) and "fetch DIV2K_train --force" in str(err.value)
    assert not [p.name for p in (tmp_path / "DIV2K_train/cache").iterdir() if p.name.startswith(".")]
    (tmp_path / "DIV2K_train/HR/0003.png").write_bytes(b"")  # not even a header
    with pytest.raises(DamagedImageError, match="0003.png"):
        TrainPatches("div2k", 2, 8, 4, root=tmp_path)


def test_embedded_sets_verify(data_root):
    checks = verify(["embedded"], data_root)
    assert [c.name for c in checks] == list(embedded.SETS)
    assert all(c.ok for c in checks), [c.line for c in checks]
    assert repair_command("embedded_valid", data_root).startswith("python -m pspl_nb.data fetch embedded --force")


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with no pixel data behind it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_a_header_claiming_a_huge_image_is_named_not_a_traceback(root, capsys):
    """Pillow refuses to open a 30000 x 30000 header (a decompression bomb) with its own exception class."""
    bomb = root / "Set5/HR/head.png"
    bomb.write_bytes(header_only_png(30000, 30000))
    (check,) = verify(["Set5"], root)
    assert not check.ok and "HR/head.png does not decode (DecompressionBombError" in check.line
    assert check.line.endswith(f"repair with `{repair_command('Set5', root)}`")
    with pytest.raises(DamagedImageError, match=rf"^{bomb} does not decode \(DecompressionBombError: .*repair with"):
        read_rgb(bomb)
    assert cli_main(["verify", "Set5", "--root", str(root)]) == 1 and "head.png" in capsys.readouterr().out

"""The data is part of a run: meta.json records what the run read, a resume or a load checks it, and a set
that is incomplete or whose LR images do not match their HR is refused before training starts."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import pspl_nb.train as T
from pspl_nb.config import profile
from pspl_nb.data import DamagedImageError, TrainPatches, load_eval_set
from pspl_nb.data import fingerprint as F
from pspl_nb.preflight import DataChangedError, run_sets
from pspl_nb.run_folder import run_folder


def smoke(**kw):
    return profile("smoke", **{"epochs": 1, "seed": 31, **kw})


@pytest.fixture
def root(data_root, tmp_path):
    """A private copy of the embedded sets, free to damage."""
    copy = tmp_path / "data"
    for folder in data_root.glob("embedded_*"):
        shutil.copytree(folder, copy / folder.name, ignore=shutil.ignore_patterns("cache"))
    return copy


def rewrite(path, change) -> None:
    """Re-save the PNG at ``path`` as ``change(pixels)``."""
    Image.fromarray(change(np.asarray(Image.open(path)).copy())).save(path)


def meta(results, c) -> dict:
    return json.loads((run_folder(c, results) / "meta.json").read_text())


def test_meta_records_every_set_the_run_reads(tmp_path, root):
    c = smoke()
    T.train(c, results=tmp_path, data_root=root, progress=False)
    data = meta(tmp_path, c)["data"]
    assert list(data) == list(run_sets(c)) == ["embedded_train", "embedded_valid", "embedded_tune"]
    assert data["embedded_train"]["files"] == 12  # 6 HR + their 6 LR at x2
    assert data["embedded_valid"]["files"] == 2 * c.eval_limit  # the images eval_limit keeps, HR and LR
    assert len(data["embedded_train"]["content"]) == 32


def test_a_finished_run_is_not_loaded_on_other_data(tmp_path, root):
    c = smoke()
    T.train(c, results=tmp_path, data_root=root, progress=False)
    rewrite(root / "embedded_train/HR/rocket.png", lambda px: 255 - px)  # the set repaired, or replaced
    with pytest.raises(DataChangedError) as err:
        T.train(c, results=tmp_path, data_root=root, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{c.run_id()} was trained on other data: embedded_train has ")
    assert f"repair it with `python -m pspl_nb.data fetch embedded --force --root {root}`" in msg
    assert msg.endswith("retrain with force=True (--force)")
    T.train(c, force=True, results=tmp_path, data_root=root, progress=False)  # retrained on the data now
    T.train(c, results=tmp_path, data_root=root, progress=False)


def test_a_run_is_not_resumed_on_other_data(tmp_path, root):
    c = smoke(epochs=2)
    epochs = T.train_epochs(c, results=tmp_path, data_root=root, progress=False)
    next(epochs)
    epochs.close()
    (root / "embedded_valid/HR/camera_0.png").rename(root / "embedded_valid/HR/zz_camera_0.png")
    with pytest.raises(DataChangedError, match="embedded_valid has other file names than when the run recorded it"):
        T.train(c, results=tmp_path, data_root=root, progress=False)


def test_a_deleted_training_image_is_refused_before_training(tmp_path, root):
    (root / "embedded_train/HR/rocket.png").unlink()  # its LR stays
    with pytest.raises(FileNotFoundError) as err:
        T.train(smoke(), results=tmp_path, data_root=root, progress=False)
    assert str(err.value) == (f"{root / 'embedded_train/HR'} holds 5 images, a complete embedded_train has 6: the set "
                              f"is incomplete; repair with `python -m pspl_nb.data fetch embedded --force --root {root}`")
    assert not list(tmp_path.rglob("last.pt")) and not list(tmp_path.rglob("meta.json"))


def test_an_lr_image_without_its_hr_or_an_hr_without_its_lr_is_refused(root):
    shutil.copy(root / "embedded_train/LR_bicubic/X2/rocketx2.png", root / "embedded_train/LR_bicubic/X2/extrax2.png")
    with pytest.raises(FileNotFoundError, match=r"extrax2.png has no HR image \(embedded_train/HR/extra.png is missing\)"):
        F.check_set("embedded_train", 2, root)
    (root / "embedded_train/LR_bicubic/X2/extrax2.png").unlink()
    (root / "embedded_train/LR_bicubic/X2/rocketx2.png").unlink()
    with pytest.raises(FileNotFoundError) as err:
        F.check_set("embedded_train", 2, root)
    assert str(err.value).startswith(f"{root / 'embedded_train/LR_bicubic/X2/rocketx2.png'} is missing (the LR image "
                                     "of embedded_train/HR/rocket.png at x2); repair with `")
    with pytest.raises(FileNotFoundError, match=r"rocketx2.png is missing \(1 LR files of embedded_train at x2\); "
                                                r"repair with `python -m pspl_nb.data fetch embedded --force"):
        TrainPatches("embedded", 2, 16, 4, root=root)


def test_an_lr_image_that_does_not_match_its_hr_is_refused_before_training(tmp_path, root):
    lr = root / "embedded_train/LR_bicubic/X2/rocketx2.png"
    rewrite(lr, lambda px: px[:-2])  # two rows short: HR // 2 no longer
    with pytest.raises(DamagedImageError) as err:
        T.train(smoke(), results=tmp_path, data_root=root, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{lr} is ") and "the LR image does not match its HR" in msg
    assert "RunConfig.patch" not in msg and msg.endswith(f"repair with `python -m pspl_nb.data fetch embedded --force "
                                                         f"--root {root}`")
    assert not list(tmp_path.rglob("last.pt"))


def test_evaluation_pairs_are_checked_as_they_load(root):
    lr = root / "embedded_valid/LR_bicubic/X3/chelsea_0x3.png"
    rewrite(lr, lambda px: px[:, :-1])
    with pytest.raises(DamagedImageError, match=r"chelsea_0x3.png is 63x64, expected 64x64 \(HR 192x192 // 3\)"):
        load_eval_set("embedded_valid", 3, root=root)
    lr.unlink()  # a set that ships LR images at x3 must have each of them: none is silently recomputed
    with pytest.raises(FileNotFoundError, match=r"chelsea_0x3.png is missing .*repair with `"):
        load_eval_set("embedded_valid", 3, root=root)


def test_large_files_are_sampled_and_digests_follow_content(tmp_path):
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    small.write_bytes(b"a" * 1000)
    body = bytearray(np.random.default_rng(0).integers(0, 256, 4 * F.SAMPLE_BYTES, dtype=np.uint8).tobytes())
    large.write_bytes(bytes(body))
    first = F.fingerprint([small, large], tmp_path)
    assert first["files"] == 2 and first["bytes"] == 1000 + len(body)
    body[-1] ^= 1  # the tail is read
    large.write_bytes(bytes(body))
    assert F.fingerprint([small, large], tmp_path)["content"] != first["content"]
    assert F.describe_change(first, {**first, "bytes": 5}) == "5 bytes now, 263,144 when the run recorded it"

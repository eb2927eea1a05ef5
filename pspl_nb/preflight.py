"""What a run checks before it trains, or before a finished run is loaded: nothing runs on wrong inputs silently.

``check_data``: every set the run reads (its training set, ``eval_sets`` and ``test_sets``) is complete
(``data.fingerprint.check_set``), and a run that has trained before finds the data it recorded in its
``meta.json``. A set deleted, changed or repaired since gives one line naming the set and the way out,
instead of a run resumed, or a finished run loaded, on other data than it was trained on.

``check_memory``: one batch fits in the memory it will live in. The estimate is a lower bound (the model's
own activations come on top), so it refuses only a batch that cannot fit, before anything is allocated:
without it a huge batch ends in a bare ``MemoryError``, or in the out-of-memory killer stopping the
process (and others) without a word.
"""
import os

from pspl_nb.config import TEST_SETS, RunConfig, resolve_device
from pspl_nb.data.datasets import repair_command
from pspl_nb.data.fingerprint import describe_change, set_fingerprint
from pspl_nb.data.sources import resolve_root, set_name
from pspl_nb.run_folder import read_meta

FLOAT_COPIES = 6  # float32 images of the HR patch a step holds at least: HR, SR, SR's gradient, 3 SSIM moments


class DataChangedError(ValueError):
    """A run's data differs from the data it recorded when it trained; the message names the set and the fix."""


def run_sets(c: RunConfig) -> dict[str, tuple[int | None, bool]]:
    """{set name: (images read, None = all; LR files required)} of every set run ``c`` reads: its training
    set (LR required), ``eval_sets`` (validation sets cut to ``eval_limit``) and ``test_sets`` (whole)."""
    sets = {set_name(c.dataset, "train"): (None, True)}
    for name in c.eval_sets:
        sets.setdefault(name, (None if name in TEST_SETS else c.eval_limit, False))
    for name in c.test_sets:
        sets[name] = (None, False)
    return sets


def data_fingerprint(c: RunConfig, data_root=None) -> dict:
    """{set name: fingerprint} (``data.fingerprint``) of the data run ``c`` reads; the form kept in meta.json."""
    root = resolve_root(data_root)
    return {name: set_fingerprint(name, c.scale, root, limit, lr) for name, (limit, lr) in run_sets(c).items()}


def check_data(c: RunConfig, folder, data_root=None, force: bool = False) -> dict:
    """The fingerprint of run ``c``'s data, after checking each set is complete and, unless ``force`` (the
    run starts over), that a run in ``folder`` which trained before recorded this same data.

    Raises FileNotFoundError for an incomplete set, DataChangedError for a set that changed since; both one
    line naming the set and the command that repairs it.
    """
    now = data_fingerprint(c, data_root)
    meta = read_meta(folder)
    recorded = meta.get("data")
    if force or not recorded or not (meta.get("state") == "finished" or (folder / "last.pt").exists()):
        return now
    for name, before in recorded.items():
        if now.get(name) != before:
            change = describe_change(before, now[name]) if name in now else "no longer read by this config"
            raise DataChangedError(
                f"{folder.name} was trained on other data: {name} has {change}; if the set was damaged, repair it "
                f"with `{repair_command(name, resolve_root(data_root))}`, if it changed on purpose, retrain with "
                "force=True (--force)")
    return now


def available_memory() -> int | None:
    """Bytes of host memory a new allocation can get (Linux ``MemAvailable``; free pages elsewhere), None
    when the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(c: RunConfig) -> None:
    """Raise ValueError (one line naming ``RunConfig.batch``) when a batch of ``c`` cannot fit in memory.

    Host: one epoch's sampling plan (``iters_per_epoch * batch`` int64) and one uint8 batch; the device
    (the host too on a CPU or MPS): ``FLOAT_COPIES`` float32 copies of the batch's HR patches.
    """
    import torch

    device = resolve_device(c.device)
    channels = 1 if c.channels == "y" else 3
    hr_pixels = (c.patch * c.scale) ** 2
    host = c.iters_per_epoch * c.batch * 8 + c.batch * channels * (c.patch ** 2 + hr_pixels)
    steps = FLOAT_COPIES * 4 * c.batch * channels * hr_pixels
    needs = [(host, available_memory(), "host memory")]
    if device.type == "cuda":
        needs.append((steps, torch.cuda.mem_get_info(device)[0], f"{device} memory"))
    else:
        needs[0] = (host + steps, needs[0][1], f"{device.type} (host) memory")
    for need, free, where in needs:
        if free is not None and need > free:
            raise ValueError(f"RunConfig.batch={c.batch}: a batch of {c.batch} patches {c.patch}x{c.patch} at "
                             f"x{c.scale} needs at least {need / 2**30:,.1f} GiB of {where}, "
                             f"{free / 2**30:,.1f} GiB available: lower batch (or patch)")

"""Is the data loader fast enough? Patches/s of TrainPatches next to the training step's rate.

``side_by_side`` alternates the two in one process: each round times a few loader batches (uint8 (LR, HR)
pairs from the embedded set through a DataLoader, ``--workers``) and one PSPL training step
(``train_step.make_step``, the engine's inner loop), for the paper's case (EDSR-baseline x2, batch 16,
LR 48) and the cpu profile's tiny EDSR (LR 24). With worker processes the loader prefetches while the
model computes, so there the loader is timed alone (``loader_rate``). The loader should deliver at least
3x the patches/s the model consumes, else training waits on data. Not a test: numbers depend on the
machine and its load.

    python -m bench.loader --threads 2
    python -m bench.loader --device cuda --workers 4 --json bench/out/gpu/loader.json
"""
import argparse
import statistics
import time

from torch.utils.data import DataLoader

from bench import timing
from bench.train_step import CASES, case_config, make_step
from pspl_nb.data import TrainPatches, ensure_embedded
from pspl_nb.places import data_root

BATCH, PATCH, SCALE = 16, 48, 2  # loader_rate's default: the paper's batch


def loader_rate(workers: int, batches: int, root, patch: int = PATCH, batch: int = BATCH) -> float:
    """Patches per second delivered by the DataLoader (uint8 pairs, default collate)."""
    data = TrainPatches("embedded", SCALE, patch, batch, iters_per_epoch=batches + 1, root=root)
    it = iter(DataLoader(data, batch_size=batch, shuffle=False, num_workers=workers))
    next(it)  # warm-up: workers started, memmaps opened
    start = time.perf_counter()
    n = sum(lr.shape[0] for lr, _hr in it)
    return n / (time.perf_counter() - start)


def side_by_side(case: str, rounds: int, root, workers: int = 0, device: str = "cpu", per_round: int = 4) -> dict:
    """Loader and model patches/s for one ``train_step`` case, measured in alternation.

    Each round: ``per_round`` loader batches (uint8 (LR, HR) pairs of the case's patch and batch from the
    embedded set), then one PSPL training step; medians over ``rounds``. With ``workers`` > 0 the loader
    is timed alone first (its workers would prefetch during the model's steps).

    Returns:
        dict: ``case``, ``label``, ``workers``, ``loader`` and ``model`` (patches/s), ``ratio`` = loader / model.
    """
    c = case_config(case)
    step = make_step(c, "pspl", device, amp=False)
    if workers:
        loader = loader_rate(workers, rounds * per_round, root, patch=c.patch, batch=c.batch)
        model = c.batch / statistics.median(timing.interleave({"model": step}, rounds, 1, device)["model"])
    else:
        data = TrainPatches("embedded", c.scale, c.patch, c.batch, (rounds + 2) * per_round + 2, root=root)
        it = iter(DataLoader(data, batch_size=c.batch, shuffle=False, num_workers=0))

        def load():
            for _ in range(per_round):
                next(it)

        times = timing.interleave({"loader": load, "model": step}, rounds, warmup=1, device=device)
        clean = timing.clean_rounds(times)
        loader = per_round * c.batch / statistics.median(timing.pick(times["loader"], clean))
        model = c.batch / statistics.median(timing.pick(times["model"], clean))
    return dict(case=case, label=CASES[case]["label"], workers=workers, loader=loader, model=model,
                ratio=loader / model, rounds=rounds)


def run(device="cpu", workers=0, rounds=None, root=None, cases=("full", "cpu")) -> dict:
    """``side_by_side`` for each case (the embedded set is built first if missing)."""
    root = ensure_embedded(root)  # idempotent; returns the data root
    return dict(cases=[side_by_side(c, rounds or (8 if c == "full" else 40), root, workers, device) for c in cases])


def render(result: dict) -> str:
    """Markdown table: loader and model patches/s per case, with the >= 3x verdict."""
    rows = [[r["label"], r["workers"], f"{r['loader']:.0f}", f"{r['model']:.0f}", f"**{r['ratio']:.1f}x**",
             "OK" if r["ratio"] >= 3 else "TOO SLOW"] for r in result["cases"]]
    return timing.table(["case", "loader workers", "loader patches/s", "model patches/s (PSPL step)",
                         "loader / model", ">= 3x"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    timing.add_common_args(parser, repeats=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (0: main process)")
    parser.add_argument("--root", default=None, help="data root (default: $PSPL_DATA or <repo>/data)")
    args = parser.parse_args()
    timing.setup(args)
    result = run(args.device, args.workers, args.repeats or None, args.root or data_root())
    print(render(result))
    if args.json:
        timing.write_json(args.json, "loader", result, args.device)


if __name__ == "__main__":
    main()

"""What PSPL costs per training step: step time with PSPL divided by step time with plain L1, interleaved.

Four arms train side by side in one process, one step each per round (``timing.interleave``), each with
its own copy of the same initial model, its own Adam and the same fixed batch of random uint8 patches:

    l1     weighting "none": plain L1, the baseline
    pspl   weighting "pspl" as the run's config builds it (``pspl_nb.train.make_criterion``): the kit's
           separable float64 SSIM map, official constants and zero padding (the profiles' default)
    pspl32 the same with the SSIM moments in float32 (``PSPLLoss(moments="float32")``): what the float64
           accuracy costs (float32 moments are ~1e-4 off, and noise on flat regions with official constants)
    dense  the same loss with the official code's SSIM: dense 11x11 window, float32 (``ssim_map_dense``)

A step is ``pspl_nb.train.take_step``, the trainer's own: set lr, uint8 -> float, forward (bf16 autocast in
the bf16 rows), ``criterion(sr.float(), hr, age)``, zero_grad, backward, the optimiser's step, the step's size;
then ``loss.item()``, and for PSPL the attention statistics the trainer records. The age is held at 1 epoch (delta = 1), where no weight underflows.

Cases (x2, EDSR-baseline), each with the PSPL / L1 ratio it must stay under (``target``):

    full   the paper's (batch 16, LR 48): 1.03, PSPL within 3% of L1.
    cpu    the cpu profile's tiny EDSR (batch 16, LR 24): at most half the overhead of the official dense
           SSIM measured in the same run, 1 + (dense / L1 - 1) / 2. On this short step the SSIM map is a
           large share of the time, and the float64 moments the kit keeps by default for accuracy are most
           of PSPL's cost; a bar taken from the dense arm of the same rounds moves with the machine and its
           load as PSPL's own ratio does, where a fixed number would not.
    smoke  the smoke profile's (batch 4, LR 16): for information.

On CUDA, ``full`` runs in fp32 and in bf16 autocast + channels_last (the gpu profile's setting), and
``--throughput N`` times N consecutive PSPL steps of each for iterations/s.

    python -m bench.train_step                       # cpu, all cases
    python -m bench.train_step --case cpu            # one case
    python -m bench.train_step --device cuda --throughput 300 --json bench/out/gpu/train_step.json
"""
import argparse
import copy
import time

import torch

from bench import timing
from pspl_nb.config import RunConfig, profile
from pspl_nb.models import build_model
from pspl_nb.pspl import PSPLLoss
from pspl_nb.ssim import ssim_map_dense
from pspl_nb.train import (Ranks, Run, attention_stats, autocast, learning_rate, make_criterion, make_optimizer,
                           pspl_loss, take_step, wrap_model)

HALF_DENSE = "half the dense overhead"  # a case's target: 1 + (dense / L1 - 1) / 2 of the same run
CASES = {
    "full": dict(profile="paper", target=1.03, label="EDSR-baseline x2, batch 16, LR 48 (paper)"),
    "cpu": dict(profile="cpu", target=HALF_DENSE, label="tiny EDSR x2, batch 16, LR 24 (cpu profile)"),
    "smoke": dict(profile="smoke", target=None, label="tiny EDSR x2, batch 4, LR 16 (smoke profile)"),
}
ARMS = ("l1", "pspl", "pspl32", "dense")
AGE = 1.0  # epochs; delta = alpha * age = 1: weights on [2 e^-4, 2], none underflows to a subnormal


def target(case: str, ratio: dict) -> float | None:
    """The PSPL / L1 ratio ``case`` must stay under, given the run's ``ratio`` (``measure``'s); None: no target.

    A number for a fixed target; for ``HALF_DENSE`` half of the overhead the dense arm measured in the same
    run, 1 + (dense / L1 - 1) / 2 (None when the run has no dense arm).
    """
    rule = CASES[case]["target"]
    if rule != HALF_DENSE:
        return rule
    dense = ratio.get("dense/l1")
    return None if dense is None else 1 + (dense[1] - 1) / 2


class DensePSPL(PSPLLoss):
    """``PSPLLoss`` with the official code's SSIM map: dense 11x11 window, computed in the input's dtype."""

    def similarity(self, sr, hr):
        return ssim_map_dense(sr, hr, *self.constants)


def case_config(name: str) -> RunConfig:
    """The RunConfig a case trains with (PSPL on; the l1 arm switches weighting off)."""
    return profile(CASES[name]["profile"], model="edsr_baseline", weighting="pspl")


def make_step(c: RunConfig, arm: str, device="cpu", amp=False, channels_last=False, model=None):
    """One training iteration of ``c`` with loss ``arm`` (one of ``ARMS``) as a no-argument callable: the
    trainer's own step (``train.take_step``, with its optimiser, numerics and step-size measurement), then
    ``loss.item()`` and, for PSPL, the attention statistics the trainer records.

    ``model`` (optional) is deep-copied, so every arm starts from the same weights. Data: one fixed batch
    of uint8 patches, (batch, 3, patch, patch) LR and the x scale HR, converted each step as the trainer does.
    """
    device = torch.device(device)
    c = c.replace(amp=amp, channels_last=channels_last)
    net = copy.deepcopy(model) if model is not None else build_model(c.model, c.scale, c.size, 3, c.rgb_range)
    net = net.to(device)
    losses = {"l1": lambda: make_criterion(c.replace(weighting="none")), "pspl": lambda: make_criterion(c),
              "pspl32": lambda: make_criterion(c.replace(moments="float32")),
              "dense": lambda: pspl_loss(c, kind=DensePSPL)}
    if arm not in losses:
        raise ValueError(f"arm={arm!r}, expected one of {ARMS}")
    run = Run(c, None, device, Ranks(), net, make_optimizer(c, net.parameters(), device), losses[arm]())
    wrap_model(run)
    g = torch.Generator().manual_seed(0)
    p, s = c.patch, c.scale
    lr_u8 = torch.randint(0, 256, (c.batch, 3, p, p), generator=g, dtype=torch.uint8).to(device)
    hr_u8 = torch.randint(0, 256, (c.batch, 3, p * s, p * s), generator=g, dtype=torch.uint8).to(device)
    amp_context, before = autocast(c, device), [q.detach().clone() for q in net.parameters()]
    stats = []

    def step():
        loss, _ = take_step(run, lr_u8, hr_u8, AGE, learning_rate(c, 0, AGE), amp_context, before)
        # a per-step time needs the step finished: one synchronisation per step. The trainer reads its losses
        # only every CHECK_EVERY steps, so on a GPU this times a step that cannot overlap the next (an upper bound)
        loss.item()
        if arm != "l1":  # the trainer keeps these per step, on the device
            stats.append(attention_stats(run.criterion.last_attention))
            del stats[:-1]

    return step


def loss_extra_ms(c: RunConfig, device="cpu", repeats=200) -> float:
    """Milliseconds the PSPL loss (forward + backward, as the engine calls it) adds over L1 on one batch.

    Short calls, interleaved, so stalls from other users' work touch few of them: a steadier estimate of
    PSPL's own cost than the difference of two noisy full-step medians (it leaves out cache effects on
    the model's own forward and backward, ~0.5 ms on the tiny model).
    """
    g = torch.Generator().manual_seed(0)
    shape = (c.batch, 3, c.patch * c.scale, c.patch * c.scale)
    sr = (torch.rand(shape, generator=g) * c.rgb_range).to(device).requires_grad_()
    hr = (torch.rand(shape, generator=g) * c.rgb_range).to(device)
    losses = {"l1": make_criterion(c.replace(weighting="none")), "pspl": make_criterion(c)}

    def call(arm):
        sr.grad = None
        loss = losses[arm](sr, hr, AGE)
        loss.item()
        loss.backward()
        if arm == "pspl":
            attention_stats(losses[arm].last_attention)

    times = timing.interleave({arm: (lambda arm=arm: call(arm)) for arm in losses}, repeats, 5, device)
    clean = timing.clean_rounds(times)
    return 1e3 * (timing.quartiles(timing.pick(times["pspl"], clean))[1]
                  - timing.quartiles(timing.pick(times["l1"], clean))[1])


def measure(case: str, device="cpu", repeats=10, warmup=2, arms=ARMS, amp=False, channels_last=False) -> dict:
    """Interleaved step times of ``arms`` for one case.

    Returns:
        dict with ``case``, ``label``, ``precision``, ``repeats``, ``clean`` (rounds no stall hit,
        ``timing.clean_rounds``), ``ms`` (arm -> [q1, median, q3] step time in milliseconds over the clean
        rounds), ``ms_all_rounds`` (arm -> median over all rounds), ``ratio`` ("<arm>/l1" for every other
        arm -> [q1, median, q3] of the round-by-round ratios over the clean rounds), ``target`` (``target``
        of this run's ratios) and ``loss_extra_ms`` (``loss_extra_ms``: the PSPL loss alone against L1).
    """
    c = case_config(case)
    torch.manual_seed(0)
    model = build_model(c.model, c.scale, c.size, 3, c.rgb_range)
    steps = {arm: make_step(c, arm, device, amp, channels_last, model) for arm in arms}
    times = timing.interleave(steps, repeats, warmup, device)
    clean = timing.clean_rounds(times)
    out = dict(case=case, label=CASES[case]["label"], repeats=repeats,
               clean=len(clean), precision="bf16 autocast + channels_last" if amp else "fp32",
               ms={arm: [1e3 * t for t in timing.quartiles(timing.pick(times[arm], clean))] for arm in arms},
               ms_all_rounds={arm: 1e3 * timing.quartiles(times[arm])[1] for arm in arms}, ratio={})
    for arm in arms:
        if arm != "l1" and "l1" in arms:
            out["ratio"][f"{arm}/l1"] = list(timing.paired_ratio(times[arm], times["l1"], clean))
    out["target"] = target(case, out["ratio"])
    if "pspl" in arms and "l1" in arms:
        out["loss_extra_ms"] = loss_extra_ms(c, device, max(repeats, 20))
    return out


def throughput(case: str, device="cuda", iters=200, amp=False, channels_last=False) -> dict:
    """Iterations/s of ``iters`` consecutive PSPL steps (after 10 untimed ones), as a training run sees it."""
    step = make_step(case_config(case), "pspl", device, amp, channels_last)
    for _ in range(10):
        step()
    timing.sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    timing.sync(device)
    seconds = time.perf_counter() - start
    return dict(case=case, precision="bf16 autocast + channels_last" if amp else "fp32", iters=iters,
                it_per_s=iters / seconds)


def run(device="cpu", repeats=None, cases=None, throughput_iters=0) -> dict:
    """The script's whole measurement: every case (CPU) or the full case in both precisions (CUDA)."""
    cuda = torch.device(device).type == "cuda"
    result = dict(cases=[], throughput=[])
    if cuda:
        plan = [(name, False) for name in cases or ("full",)] + [(name, True) for name in cases or ("full",)]
    else:
        plan = [(name, False) for name in cases or CASES]
    for name, amp in plan:
        # the full model is ~30x the tiny one per step: fewer rounds give it the same wall time
        n = repeats or (30 if cuda else 16 if name == "full" else 300)
        result["cases"].append(measure(name, device, n, amp=amp, channels_last=amp))
    if throughput_iters:
        for amp in (False, True):
            result["throughput"].append(throughput("full", device, throughput_iters, amp, amp))
    return result


def render(result: dict) -> str:
    """Markdown: one row per case and precision, with the target verdict (the target recomputed by ``target``
    from the row's ratios, so a stored result renders under the current rule)."""
    rows = []
    for r in result["cases"]:
        ms, ratio = r["ms"], r["ratio"]
        pspl, dense, p32 = ratio.get("pspl/l1"), ratio.get("dense/l1"), ratio.get("pspl32/l1")
        bar = target(r["case"], ratio)
        verdict = "" if bar is None or pspl is None else (
            f"{'meets' if pspl[1] <= bar else 'MISSES'} <= {f'{bar:.3f}'.rstrip('0')}"
            + (" (half of dense's overhead)" if CASES[r["case"]]["target"] == HALF_DENSE else ""))
        clean = f"{r.get('clean', r['repeats'])} of {r['repeats']}"
        extra = r.get("loss_extra_ms")
        loss = "-" if extra is None else f"{extra:.2f} ({1 + extra / ms['l1'][1]:.3f})"
        rows.append([r["label"], r["precision"], clean, f"{ms['l1'][1]:.1f}",
                     f"{ms['pspl'][1]:.1f}" if "pspl" in ms else "-", f"{ms['dense'][1]:.1f}" if "dense" in ms else "-",
                     f"**{pspl[1]:.3f}** [{pspl[0]:.3f}, {pspl[2]:.3f}]" if pspl else "-",
                     f"{p32[1]:.3f} [{p32[0]:.3f}, {p32[2]:.3f}]" if p32 else "-",
                     f"{dense[1]:.3f} [{dense[0]:.3f}, {dense[2]:.3f}]" if dense else "-", verdict, loss])
    text = timing.table(["case", "precision", "clean rounds", "L1 step ms", "PSPL step ms", "dense-SSIM PSPL ms",
                         "PSPL / L1 [q1, q3]", "float32-moment PSPL / L1", "dense / L1 [q1, q3]", "target",
                         "PSPL loss alone: extra ms (1 + extra / L1 step)"], rows)
    if result.get("throughput"):
        text += "\n\n" + timing.table(
            ["PSPL training, full case", "iterations", "iterations/s", "1000-iteration epoch (s, no data, no eval)"],
            [[t["precision"], t["iters"], f"{t['it_per_s']:.1f}", f"{1000 / t['it_per_s']:.1f}"]
             for t in result["throughput"]])
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    timing.add_common_args(parser, repeats=0)
    parser.add_argument("--case", nargs="*", choices=tuple(CASES),
                        help="cases to run (default: all on CPU, full on CUDA)")
    parser.add_argument("--throughput", type=int, default=0, metavar="N", help="also time N consecutive steps")
    args = parser.parse_args()
    timing.setup(args)
    result = run(args.device, args.repeats or None, args.case, args.throughput)
    print(render(result))
    if args.json:
        timing.write_json(args.json, "train_step", result, args.device)


if __name__ == "__main__":
    main()

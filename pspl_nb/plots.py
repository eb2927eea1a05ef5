"""Figures of the kit. Each function draws one figure from plain arrays or tables and returns it;
notebooks call ``show(fig, name)`` to display, save (PNG under the profile's figure folder) and close it.

Every training figure carries a provenance line (``RunConfig.describe``) so a reader always knows which
data, model size and schedule made it.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pspl_nb.pspl import Schedule

ARM_COLORS = {"l1": "tab:blue", "l2": "tab:blue", "pspl": "tab:red", "uniform": "tab:green",
              "contrast": "tab:brown", "easy_first": "tab:purple", "warmup": "tab:orange"}


def metric_label(column: str) -> str:
    """Axis label for a history column: its unit, set and metric (the benchmark metric or EDSR-PyTorch's)."""
    if column.startswith("edsr_psnr_"):
        return f"PSNR (dB), {column.removeprefix('edsr_psnr_')}, EDSR metric (RGB, shave scale + 6)"
    if column.startswith("psnr_"):
        return f"PSNR (dB), {column.removeprefix('psnr_')}, Y channel, shave = scale"
    return column


def show(fig, name: str | None = None, folder=None):
    """Display ``fig`` (in Jupyter), save it as ``<folder>/<name>.png`` when both are given, then close it."""
    if name and folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(folder) / f"{name}.png", dpi=110, bbox_inches="tight")
    try:
        from IPython.display import display
        display(fig)
    except ImportError:
        pass
    plt.close(fig)


def footnote(fig, text: str):
    """Provenance under the figure: which data, model size and schedule made it."""
    fig.text(0.01, -0.02, text, fontsize=7, color="0.35", ha="left", va="top", wrap=True)
    return fig


def pipeline(hr: np.ndarray, sr: np.ndarray, ms: np.ndarray, ma: np.ndarray, step: float):
    """The paper's Fig. 2 as pictures: HR and SR (uint8 (H, W, 3)) -> SSIM map -> attention -> weighted error."""
    err = np.abs(sr.astype(float) - hr.astype(float)).mean(-1)
    panels = [(hr, "HR $I_{hr}$", None), (sr, "SR $I_{sr}$", None), (ms, "$M_s$ = SSIM map (Eq. 3-5)", "magma"),
              (ma, f"$M_a$ = attention at step {step:g} (Eq. 7)", "viridis"),
              (ma * err, "$M_a \\cdot |I_{sr} - I_{hr}|$ (Eq. 10, L1)", "inferno")]
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.6), constrained_layout=True)
    for ax, (img, title, cmap) in zip(axes, panels):
        im = ax.imshow(img, cmap=cmap)
        if cmap:
            fig.colorbar(im, ax=ax, shrink=0.7)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle("PSPL data flow: the loss sees each pixel's error times a weight from its SSIM", fontsize=10)
    return fig


def attention_over_training(history: pd.DataFrame, ax=None):
    """Mean, min and max PSPL weight per epoch of a run (columns att_mean, att_min, att_max, epoch)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history.epoch, history.att_mean, color="tab:red", label="mean weight")
    ax.fill_between(history.epoch, history.att_min, history.att_max, color="tab:red", alpha=0.2, label="min..max")
    ax.set(xlabel="epoch", ylabel="attention weight", title="PSPL weights on training batches")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def attention_vs_ssim(steps=(1, 2, 4, 8, 16, 32, 64), schedule: Schedule = Schedule(), ax=None):
    """The paper's Fig. 3 (left): attention weight against SSIM on [-1, 1] for several ages (epochs)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    ms, cmap, top = np.linspace(-1, 1, 401), plt.get_cmap("viridis"), max(schedule.gamma, 1e-3)
    for i, step in enumerate(steps):
        ax.plot(ms, schedule.weights(ms, step).numpy(), color=cmap(i / max(1, len(steps) - 1)), label=f"step {step:g}")
    ax.set(xlabel="SSIM of the pixel's neighbourhood", ylabel="attention weight $M_a$", xlim=(-1, 1),
           ylim=(-0.05 * top, 1.05 * top), title=f"Eq. 7: gamma={schedule.gamma:g}, mu={schedule.mu:g}, "
                                                 f"delta={schedule.alpha:g}*step+{schedule.beta:g}")
    ax.legend(fontsize=7, ncol=2)
    return ax.figure


def attention_maps(ms: np.ndarray, steps=(1, 2, 4, 8), schedule: Schedule = Schedule()):
    """The paper's Fig. 3 (right): the attention of one SSIM map (H, W) at several ages, shared colour scale."""
    fig, axes = plt.subplots(1, len(steps) + 1, figsize=(3 * (len(steps) + 1), 3.2), constrained_layout=True)
    im = axes[0].imshow(ms, cmap="magma", vmin=-1, vmax=1)
    axes[0].set_title("SSIM map $M_s$")
    fig.colorbar(im, ax=axes[0], shrink=0.7)
    for ax, step in zip(axes[1:], steps):
        im = ax.imshow(schedule.weights(ms, step).numpy(), cmap="viridis", vmin=0, vmax=schedule.gamma)
        ax.set_title(f"$M_a$ at step {step:g}")
    fig.colorbar(im, ax=axes[-1], shrink=0.7, label="weight")
    for ax in axes:
        ax.axis("off")
    return fig


def draw_explorer(fig, maps: dict, schedule: Schedule = Schedule(), step=1.0, ssim="official"):
    """Redraw the slider figure in place: weight curve, attention map and weight histogram.

    Args:
        fig: a matplotlib Figure (cleared and redrawn). maps: {"official": (H, W), "paper": (H, W)} SSIM
            maps of one SR/HR pair. schedule: PSPL's gamma, mu, alpha, beta. step: the age (epochs).
            ssim: which map.
    Returns:
        ``fig``. An age ``Schedule.weights`` rejects raises its ValueError here, so tests see it.
    """
    fig.clear()
    ms, gamma = maps[ssim], schedule.gamma
    w = schedule.weights(ms, step).numpy()
    ax_curve, ax_map, ax_hist = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=(1.1, 1, 1)))
    grid = np.linspace(-1, 1, 401)
    ax_curve.plot(grid, schedule.weights(grid, step).numpy(), color="tab:red")
    ax_curve.hist(ms.ravel(), bins=60, range=(-1, 1), density=True, color="0.8", label="SSIM of this image")
    ax_curve.set(xlabel="SSIM", ylabel="weight", xlim=(-1, 1), ylim=(0, max(gamma, 1e-3) * 1.05),
                 title=f"delta = {schedule.delta(step):.3g}")
    ax_curve.legend(fontsize=7, loc="upper right")
    im = ax_map.imshow(w, cmap="viridis", vmin=0, vmax=max(gamma, 1e-12))
    ax_map.set_title(f"attention, {ssim} SSIM")
    ax_map.axis("off")
    fig.colorbar(im, ax=ax_map, shrink=0.75)
    ax_hist.hist(w.ravel(), bins=50, range=(0, max(gamma, 1e-12)), color="tab:red")
    ax_hist.set(xlabel="weight", ylabel="pixels", yscale="log",
                title=f"mean {w.mean():.3g}, max/min {w.max() / max(w.min(), 1e-300):.3g}")
    fig.suptitle(f"gamma={gamma:g}  mu={schedule.mu:g}  alpha={schedule.alpha:g}  beta={schedule.beta:g}  "
                 f"step={step:g}", fontsize=9)
    return fig


def explorer_grid(maps: dict, steps=(0.25, 1, 4), schedule: Schedule = Schedule(), ssim="official"):
    """Static copies of the slider figure at a few steps, so executed and HTML notebooks show the content."""
    figs = []
    for step in steps:
        fig = plt.figure(figsize=(12, 3.3), constrained_layout=True)
        figs.append(draw_explorer(fig, maps, schedule, step, ssim))
    return figs


def psnr_curves(tidy: pd.DataFrame, column: str, threshold: float | None = None, ax=None, note: str = "",
                marks: dict | None = None):
    """The paper's Fig. 4 with seeds: mean PSNR per arm against epoch, band = range (min..max) over seeds.

    Args:
        tidy: rows of (arm, seed, epoch, ``column``) as ``experiments.run_grid`` returns.
        column: e.g. ``"psnr_embedded_valid"`` or ``"edsr_psnr_DIV2K_valid"`` (dB; the axis names the metric).
        threshold: draws the line the speed question is asked at (the paper: 34.4 dB, EDSR metric).
        marks: {label: (epoch, dB)} points to draw, e.g. the paper's own crossings and finals.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    for arm, g in tidy.groupby("arm", sort=False):
        stats = g.groupby("epoch")[column].agg(["mean", "min", "max", "count"])
        color = ARM_COLORS.get(arm, ARM_COLORS.get(arm.split("_")[0]))
        ax.plot(stats.index, stats["mean"], color=color, ls="-" if arm in ARM_COLORS else "--",
                label=f"{arm} (mean of {stats['count'].max()} seeds, band: range)")
        ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="0.3", ls="--", lw=0.8, label=f"threshold {threshold:.2f} dB")
    for label, (epoch, value) in (marks or {}).items():
        ax.plot([epoch], [value], marker="x", color="k", ms=7, ls="none")
        ax.annotate(label, (epoch, value), fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set(xlabel="epoch", ylabel=metric_label(column), title=note or None)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax.figure


def control_curves(tidy: pd.DataFrame, column: str, threshold: float | None = None, note: str = "",
                   groups: dict | None = None):
    """Notebook 07: one panel per group of arms ({title: [arms]}), each beside plain L1 and PSPL, with seed
    bands. Default groups: the 2x2 (l1, uniform, contrast, pspl) and everything else."""
    arms = list(dict.fromkeys(tidy.arm))
    if groups is None:
        design = [a for a in ("l1", "uniform", "contrast", "pspl") if a in arms]
        groups = {"the 2x2: scale x contrast": design}
        rest = [a for a in arms if a not in design]
        if rest:
            groups["other controls and variants"] = rest
    fig, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 4.2), sharey=True, constrained_layout=True,
                             squeeze=False)
    for ax, (title, group) in zip(axes[0], groups.items()):
        shown = list(dict.fromkeys([a for a in ("l1", "pspl") if a in arms] + list(group)))
        psnr_curves(tidy[tidy.arm.isin(shown)], column, threshold, ax=ax, note=f"{title} {note}".strip())
    return fig


def training_attention(snap: dict, index: int, gamma: float = 2.0):
    """Notebook 04: HR crop, SR and attention (mean over channels) at recorded age ``index``, with a histogram.

    ``snap`` holds the arrays of a run's ``attention.npz``: ages (K,), hr (H, W, C), sr (K, C, H, W),
    attention (K, C, H, W).
    """
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), constrained_layout=True)
    hr, sr = snap["hr"], snap["sr"][index].transpose(1, 2, 0)
    a = snap["attention"][index]
    for ax, img, title in ((axes[0], hr, "HR crop"), (axes[1], sr, f"SR at age {snap['ages'][index]:.2f}")):
        ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    im = axes[2].imshow(a.mean(0), cmap="viridis", vmin=0, vmax=gamma)
    axes[2].set_title("attention (mean over channels)")
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], shrink=0.75)
    axes[3].hist(a.ravel(), bins=50, range=(0, gamma), color="tab:red")
    axes[3].set(xlabel="weight", ylabel="pixels", yscale="log", title=f"mean weight {a.mean():.3g}")
    return fig


def weight_histograms(snap: dict, gamma: float = 2.0):
    """Notebook 04: the weight distribution at every recorded age, one line each (log counts)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    cmap = plt.get_cmap("viridis")
    edges = np.linspace(0, gamma, 51)
    for i, age in enumerate(snap["ages"]):
        counts, _ = np.histogram(snap["attention"][i].ravel(), bins=edges)
        ax.step(edges[:-1], np.maximum(counts, 0.5), where="post", color=cmap(i / max(1, len(snap["ages"]) - 1)),
                label=f"age {age:.2f}")
    ax.set(xlabel="attention weight", ylabel="pixels", yscale="log", title="PSPL weights during training")
    ax.legend(fontsize=7, ncol=2)
    return fig


def image_grid(images: dict, box=None, title: str = ""):
    """The paper's Fig. 5: the same (zoomed) crop of several uint8 images (H, W, 3) side by side.

    ``box`` = (top, left, height, width) in HR pixels; the first image is shown whole with the box drawn.
    """
    names = list(images)
    fig, axes = plt.subplots(1, len(names) + (box is not None), figsize=(2.8 * (len(names) + 1), 3.2),
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    if box is not None:
        t, l, h, w = box
        axes[0].imshow(images[names[0]])
        axes[0].add_patch(plt.Rectangle((l, t), w, h, fill=False, color="yellow", lw=1.5))
        axes[0].set_title(names[0])
        crops, axes = {k: v[t:t + h, l:l + w] for k, v in images.items()}, axes[1:]
    else:
        crops = images
    for ax, (name, img) in zip(axes, crops.items()):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
    for ax in fig.axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def threshold_sensitivity(sweep: pd.DataFrame, chosen: float | None = None, note: str = ""):
    """Speed ratio (arm / baseline epochs to threshold, t-interval band) against the threshold (dB).

    ``sweep`` is ``stats.threshold_sweep``'s table; ``chosen`` marks the threshold the verdict tables use. Read
    it as: where the band lies wholly below 1 the arm is faster *at those thresholds*; a verdict that flips
    along the axis belongs to the threshold, not to the arm. The top axis gives the baseline's epoch there.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    for arm, g in sweep.groupby("arm", sort=False):
        g = g.sort_values("threshold")
        color = ARM_COLORS.get(arm.split("_")[0])
        ax.plot(g.threshold, g.ratio, marker="o", ms=3, color=color, label=arm)
        ax.fill_between(g.threshold, g.lo, g.hi, color=color, alpha=0.15, lw=0)
    ax.axhline(1.0, color="0.3", lw=0.8)
    if chosen is not None:
        ax.axvline(chosen, color="0.3", ls="--", lw=0.8, label=f"threshold of the verdicts, {chosen:.2f} dB")
    base = sweep.drop_duplicates("threshold").sort_values("threshold")
    top = ax.secondary_xaxis("top", functions=(
        lambda x: np.interp(x, base.threshold, base.base_epoch), lambda e: np.interp(e, base.base_epoch, base.threshold)))
    top.set_xlabel("epoch at which the baseline's mean curve reaches it")
    ax.set(xlabel="threshold PSNR (dB)", ylabel="epochs ratio, arm / baseline (95% t-interval)", yscale="log",
           title=note or None)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return fig


def effects_forest(tables: dict, note: str = ""):
    """Effects with their intervals, one panel per table (e.g. {"final PSNR": ..., "mean PSNR over epochs": ...}
    from ``controls.factorial_effects``): a dot and a bar per effect, the zero line for "no effect"."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 0.45 * max(len(t) for t in tables.values()) + 1.4),
                             sharey=True, constrained_layout=True, squeeze=False)
    for ax, (title, t) in zip(axes[0], tables.items()):
        y = np.arange(len(t))[::-1]
        colors = ["tab:green" if v.startswith("better") else "tab:red" if v.startswith("worse") else "0.4"
                  for v in t.verdict]
        ax.hlines(y, t.lo, t.hi, colors=colors, lw=2)
        ax.scatter(t["diff"], y, c=colors, zorder=3)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks(y, t.effect if "effect" in t else t.index)
        ax.set(xlabel=f"{title} (dB), 95% t-interval over {int(t.n.min())} seeds", title=title)
        ax.grid(alpha=0.3, axis="x")
    if note:
        fig.suptitle(note, fontsize=9)
    return fig


def lr_sweep(lrs: pd.DataFrame, note: str = "", chosen: dict | None = None):
    """Final PSNR against the learning-rate multiplier for each family (``controls.lr_table``), with the
    difference-from-x1 interval as error bars. Ringed: the lr ``chosen`` for each family ({family: arm}, e.g.
    on held-out seeds by ``controls.chosen_lrs``), or the table's own best where none is given."""
    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    for family, g in lrs.groupby("family", sort=False):
        color = ARM_COLORS.get(family)
        ax.errorbar(g.lr_mult, g["mean"], yerr=[g.diff_vs_x1 - g.lo, g.hi - g.diff_vs_x1], color=color, marker="o",
                    capsize=3, label=f"{family} (error bar: difference from x1, 95% t)")
        best = g[g.arm == chosen[family]] if chosen and family in chosen else g[g.best]
        ax.scatter(best.lr_mult, best["mean"], s=160, facecolors="none", edgecolors=color)
    ax.set(xscale="log", xlabel="learning rate multiplier (x the profile's lr)", ylabel="final PSNR (dB), mean over seeds",
           title=note or None)
    ax.set_xticks(sorted(lrs.lr_mult.unique()), [f"x{m:g}" for m in sorted(lrs.lr_mult.unique())])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def gains_forest(gains: pd.DataFrame, note: str = ""):
    """Table 1's PSPL gains with intervals (``questions.gains``): one row per (model, set), the paper's claimed
    gain as a cross where it has one (column ``paper_gain_psnr``, optional)."""
    t = gains.assign(effect=gains.model + " / " + gains.set, diff=gains.gain_psnr, n=gains.seeds)
    fig = effects_forest({"PSPL gain in PSNR": t}, note)
    ax = fig.axes[0]
    if "paper_gain_psnr" in gains:
        y = np.arange(len(t))[::-1]
        ax.scatter(gains.paper_gain_psnr, y, marker="x", color="k", zorder=4, label="the paper's claimed gain")
        ax.legend(fontsize=7)
    return fig


def effective_step(steps: pd.DataFrame, note: str = ""):
    """The optimiser's step per unit of scheduled lr against the age (``controls.step_sizes``): Adam arms on
    the left, SGD arms on the right (absent arms leave their panel out).

    Read it as: under Adam plain L1's step is about 1 lr per step from the start; PSPL's and uniform's start
    near 0 (their weights do) and then *overshoot* 1 while Adam's second moment still remembers the small early
    gradients: that overshoot is the larger step a rising loss scale buys. ``l1_lrramp`` should track uniform
    if the step sizes are the whole mechanism. Under SGD the step follows the loss scale itself.
    """
    panels = {"Adam": steps[~steps.arm.str.endswith("_sgd")], "SGD with momentum": steps[steps.arm.str.endswith("_sgd")]}
    panels = {k: v for k, v in panels.items() if not v.empty}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 3.9), constrained_layout=True, squeeze=False)
    styles = {"l1_lrramp": "--", "uniform_beta2_0.99": ":"}
    for ax, (title, t) in zip(axes[0], panels.items()):
        for arm, g in t.groupby("arm", sort=False):
            ax.plot(g.age, g.step, label=f"{arm} ({int(g.seeds.max())} seeds)", ls=styles.get(arm, "-"),
                    color=ARM_COLORS.get(arm.split("_")[0]), lw=1.4)
        ax.set(xscale="log", xlabel="age (epochs)", title=title,
               ylabel="RMS parameter change per step / scheduled lr")
        if title == "Adam":
            ax.axhline(1.0, color="0.4", lw=0.7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    if note:
        fig.suptitle(note, fontsize=9)
    return fig


def primary_forest(claims: pd.DataFrame, note: str = ""):
    """The primary claims (``questions.primary_claims``): per claim the estimate with its 95% interval over
    seeds (thin), the interval widened for the four claims (thick) and, where present, the interval over
    seeds and images (open markers); dB differences left, the epochs ratio right (log scale)."""
    kinds = [k for k in ("difference", "ratio") if (claims.kind == k).any()]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 1.1 + 0.55 * len(claims)), constrained_layout=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        t = claims[claims.kind == kind]
        y = np.arange(len(t))[::-1]
        ax.hlines(y, t.lo, t.hi, color="0.6", lw=1, label="95% t over seeds")
        ax.hlines(y, t.adj_lo, t.adj_hi, color="k", lw=3, alpha=0.6, label="widened for 4 claims (Bonferroni)")
        if "img_lo" in t:
            ax.scatter(t.img_lo, y - 0.15, marker="|", color="tab:purple", s=80, label="95% over seeds and images")
            ax.scatter(t.img_hi, y - 0.15, marker="|", color="tab:purple", s=80)
        ax.scatter(t.estimate, y, color="tab:red", zorder=3)
        ax.axvline(1.0 if kind == "ratio" else 0.0, color="0.3", lw=0.8)
        ax.set_yticks(y, [f"{r.claim}: {r.arm} vs {r.baseline}" if r.claim in ("final", "speed") else
                          f"{r.claim} effect (2x2, lr x1)" for r in t.itertuples()], fontsize=8)
        ax.set(xscale="log" if kind == "ratio" else "linear",
               xlabel="epochs ratio (< 1: faster)" if kind == "ratio" else "difference in PSNR (dB)")
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=7, loc="best")
    if note:
        fig.suptitle(note, fontsize=9)
    return fig


def image_differences(d: pd.DataFrame, note: str = ""):
    """Per image, an arm's final PSNR minus the baseline's (dB): the mean over seeds as a bar, the seeds'
    range as a line (``d``: seeds x images, ``questions.final_by_image`` differences). Read it as: a gain
    that holds on most images is a property of the method; one carried by a few images is a property of
    those images."""
    order = d.mean().sort_values().index
    fig, ax = plt.subplots(figsize=(7, 0.18 * len(order) + 1.4), constrained_layout=True)
    y = np.arange(len(order))
    mean = d[order].mean()
    ax.barh(y, mean, color=np.where(mean > 0, "tab:red", "tab:blue"), alpha=0.6)
    ax.hlines(y, d[order].min(), d[order].max(), color="0.3", lw=0.8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(y, order, fontsize=6)
    ax.set(xlabel=f"final PSNR difference (dB): bar = mean over {len(d)} seeds, line = their range", title=note or None)
    ax.grid(alpha=0.3, axis="x")
    return fig


def adam_steps(table: pd.DataFrame, window: int = 25):
    """Notebook 02: Adam under several loss-scale schedules (``exercises.adam_step_sizes``). Left, the scale
    of the loss at every step (log axes); right, Adam's step size (root mean square change of the weights,
    divided by lr), averaged over ``window`` steps. Constant scales draw one line; a rising one draws above it."""
    fig, (ax_scale, ax_step) = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
    styles = {"constant 0.01": dict(ls="--"), "constant 100": dict(ls=":", lw=2.5)}
    for i, (name, part) in enumerate(table.groupby("schedule", sort=False)):
        color = plt.get_cmap("tab10")(i)
        style = dict(dict(color=color, lw=1.5), **styles.get(name, {}))
        ax_scale.plot(part.step, part.scale.clip(lower=1e-12), label=name, **style)
        ax_step.plot(part.step, part.step_size.rolling(window, min_periods=1).mean(), label=name, **style)
    ax_scale.set(xscale="log", yscale="log", xlabel="step", ylabel="loss scale (clipped at 1e-12)",
                 title="what multiplies the loss")
    ax_step.set(xscale="log", xlabel="step", ylabel=f"Adam's step / lr (mean of {window} steps)",
                title="how far Adam moves the weights")
    for ax in (ax_scale, ax_step):
        ax.grid(alpha=0.3)
    ax_step.legend(fontsize=7, loc="upper left")
    fig.suptitle("Adam divides the gradient by its own running size: a constant scale cancels, a rising one does not",
                 fontsize=10)
    return fig

"""A live race: plain L1 and PSPL trained side by side on a small model while the reader watches.

``run_race`` alternates one epoch of each run (the trainer's ``train_epochs`` generators), calling back after
every epoch with both PSNR curves so far and PSPL's attention on a validation crop as it is *now* and as it
was after its first epoch. Both runs are ordinary run folders: a finished race loads instantly when its
settings come back, and a stopped one resumes where it stopped. ``draw_race`` is the figure, ``race_widget``
the sliders and buttons around them; their callbacks are plain functions so tests call them directly.

A race is one seed scored on a few validation crops, so its curves swing from epoch to epoch by more than
the gap between the arms. ``run_races`` repeats it over several seeds, ``draw_seed_band`` and ``noise_table``
show how much one run swings, and ``schedule`` says how long an epoch is and where PSPL's ramp ends.
"""
import dataclasses
import io
import threading
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np

import pandas as pd

from pspl_nb.config import RunConfig, profile
from pspl_nb.pspl import Schedule
from pspl_nb.run_folder import load_history, load_model, run_folder
from pspl_nb.schedule import nonuniform_fraction
from pspl_nb.train import Snapshotter, train_epochs
from pspl_nb.widgets import schedule_sliders

# The race on a laptop CPU: about a minute for both runs. CI (the smoke and rehearse profiles) races a few seconds.
RACE = {"smoke": dict(epochs=3, iters_per_epoch=6, batch=4, patch=16, milestones=(3,), eval_limit=2),
        "default": dict(epochs=20, iters_per_epoch=15, batch=8, patch=24, milestones=(15,), eval_limit=6)}
EARLY_AGE = 1.0  # epochs: the age of the early attention map the figure keeps beside the current one
UNIFORM_TOL = 0.10  # "PSPL's ramp has ended": weights of SSIM 0..1 within 10% of each other


def race_configs(profile_name: str = "cpu", schedule: Schedule = Schedule(), seed: int = 0) -> tuple[RunConfig, RunConfig]:
    """(plain L1, PSPL) configs of a race: tiny EDSR-baseline x2 on the embedded images, the same seed, PSPL
    on ``schedule``. ``profile_name`` "smoke" or "rehearse" gives the seconds-long CI race, any other the
    minute-long one. The PSPL run records its attention at age ``EARLY_AGE``, so a finished race still shows
    the early map."""
    size = RACE["smoke" if profile_name in ("smoke", "rehearse") else "default"]
    base = profile("smoke", **size, eval_sets=("embedded_valid",), attention_steps=(), seed=seed)
    return base.replace(weighting="none"), base.replace(**dataclasses.asdict(schedule), attention_steps=(EARLY_AGE,))


def schedule(pspl: RunConfig) -> dict:
    """How long a race is and where PSPL's ramp ends: iters_per_epoch, batch, epochs, iterations (in all),
    ramp_epoch (the age, in epochs, from which PSPL's weights of SSIM values 0..1 are within 10% of each
    other, ``schedule.nonuniform_fraction``; inf if never) and ramp_iteration (the same in iterations)."""
    ramp = nonuniform_fraction(pspl.epochs, pspl.schedule(), tol=UNIFORM_TOL)["epoch_uniform"]
    return dict(iters_per_epoch=pspl.iters_per_epoch, batch=pspl.batch, epochs=pspl.epochs,
                iterations=pspl.epochs * pspl.iters_per_epoch, ramp_epoch=ramp,
                ramp_iteration=ramp * pspl.iters_per_epoch)


def describe_schedule(pspl: RunConfig) -> str:
    """``schedule`` in one sentence, for the notebook and the figure."""
    s = schedule(pspl)
    ramp = ("never within 10% of uniform in this race" if s["ramp_epoch"] > s["epochs"] else
            f"within 10% of uniform from epoch {s['ramp_epoch']:.1f} = iteration {s['ramp_iteration']:.0f} on")
    return (f"a race epoch is {s['iters_per_epoch']} iterations of {s['batch']} patches ({s['iterations']} iterations "
            f"in all; the paper's epoch is 1000 of 16); PSPL's weights are {ramp}")


@dataclass
class RaceState:
    """What the figure shows: per arm the (epoch, PSNR dB) points so far, PSPL's latest attention map
    (H, W, mean over channels, on [0, gamma]) and its age (epochs), the map at age ``EARLY_AGE`` once the run
    got there (``early``, ``early_age``), and whether the race ended or was stopped."""

    configs: tuple
    curves: dict = field(default_factory=lambda: {"l1": [], "pspl": []})
    attention: np.ndarray | None = None
    age: float = 0.0
    early: np.ndarray | None = None
    early_age: float = EARLY_AGE
    done: bool = False
    stopped: bool = False


def _early(state: RaceState, folder) -> None:
    """Fill ``state.early`` from the run's recorded attention (``attention.npz``, written after each epoch)."""
    path = folder / "attention.npz"
    if state.early is None and path.exists():
        with np.load(path) as snap:
            state.early, state.early_age = snap["attention"][0].mean(0), float(snap["ages"][0])


def _attention(snaps: Snapshotter, model, age: float, device="cpu") -> np.ndarray:
    return snaps.attention_now(model, age, device)["attention"].mean(0)


def run_race(configs, on_update=None, stop: threading.Event | None = None, results=None, data_root=None) -> RaceState:
    """Train the (L1, PSPL) ``configs`` one epoch each in turn; returns the final ``RaceState``.

    Args:
        on_update: called with the state after every epoch of either run (and once at the end).
        stop: when set, the race ends after the current epoch; both runs keep their last checkpoint.
        results, data_root: as in ``train.train``.
    Finished runs are loaded, not trained: a race run before returns at once.
    """
    state, stop = RaceState(tuple(configs)), stop or threading.Event()
    l1, pspl = configs
    snaps = Snapshotter(pspl, data_root)
    column = f"psnr_{pspl.val_set}"

    def so_far():  # epochs a run already has (finished, or stopped earlier): drawn at once, not trained again
        for arm, c in (("l1", l1), ("pspl", pspl)):
            folder = run_folder(c, results)
            if (folder / "history.csv").exists():
                h = load_history(folder)
                state.curves[arm] = list(zip(h.epoch, h[column]))
        _early(state, run_folder(pspl, results))

    so_far()
    runs = {"l1": train_epochs(l1, results=results, data_root=data_root, progress=False),
            "pspl": train_epochs(pspl, results=results, data_root=data_root, progress=False)}
    try:
        while runs and not stop.is_set():
            for arm in list(runs):
                report = next(runs[arm], None)
                if report is None:
                    del runs[arm]
                    continue
                state.curves[arm].append((report.row["epoch"], report.row[column]))
                if arm == "pspl":
                    state.age = report.row["age"]
                    state.attention = _attention(snaps, report.model, state.age, report.run.device)
                    _early(state, report.run.folder)
                if on_update:
                    on_update(state)
                if stop.is_set():
                    break
    finally:
        for gen in runs.values():
            gen.close()  # a stopped race leaves each run at its last finished epoch
    state.stopped = stop.is_set()
    state.done = not state.stopped
    so_far()
    if state.attention is None and (run_folder(pspl, results) / "last.pt").exists():
        state.age = float(load_history(run_folder(pspl, results)).age.iloc[-1])
        state.attention = _attention(snaps, load_model(pspl, "last", results), state.age)
    if on_update:
        on_update(state)
    return state


def swing(points) -> float:
    """The largest change of PSNR (dB) between two consecutive epochs of one run's (epoch, PSNR) points."""
    values = np.array([v for _, v in points], dtype=float)
    return float(np.abs(np.diff(values)).max()) if len(values) > 1 else float("nan")


def draw_race(fig, state: RaceState):
    """Redraw ``fig`` (None: a new figure): both validation-PSNR curves (dB against epoch, iterations on the top
    axis, PSPL's ramp shaded), PSPL's attention map at age ``EARLY_AGE`` and now, and under the curves how much
    each curve swung between two epochs against the gap between the arms. Returns the figure."""
    if fig is None:
        fig = plt.figure(figsize=(12, 3.9), constrained_layout=True)
    fig.clear()
    ax_curve, ax_early, ax_map = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=(1.7, 1, 1)))
    l1, pspl = state.configs
    plan = schedule(pspl)
    ramp_end = min(plan["ramp_epoch"], pspl.epochs + 0.5)
    ax_curve.axvspan(0.5, max(ramp_end, 0.5), color="tab:red", alpha=0.07, lw=0,
                     label="PSPL's weights uneven" if ramp_end > 0.5 else None)
    for arm, color in (("l1", "tab:blue"), ("pspl", "tab:red")):
        if state.curves[arm]:
            epochs, values = zip(*state.curves[arm])
            ax_curve.plot(epochs, values, marker="o", ms=3, color=color, label=arm)
    status = "finished" if state.done else "stopped" if state.stopped else "training..."
    ax_curve.set(xlim=(0.5, pspl.epochs + 0.5), xlabel="epoch", ylabel=f"PSNR (dB), {pspl.val_set} (Y, shave 2)")
    top = ax_curve.secondary_xaxis("top", functions=(lambda e: e * pspl.iters_per_epoch,
                                                     lambda i: i / pspl.iters_per_epoch))
    top.set_xlabel("iteration", fontsize=8)
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=8, loc="lower right")
    noise = ""
    if state.curves["l1"] and state.curves["pspl"]:
        n = min(len(state.curves["l1"]), len(state.curves["pspl"]))
        gap = state.curves["pspl"][n - 1][1] - state.curves["l1"][n - 1][1]
        noise = (f"\none seed, {pspl.eval_limit} crops; largest jump between two epochs:\n"
                 f"L1 {swing(state.curves['l1']):.2f} dB, PSPL {swing(state.curves['pspl']):.2f} dB; "
                 f"PSPL - L1 at epoch {n}: {gap:+.2f} dB")
    ax_curve.set_title(status + noise, fontsize=8, pad=22, backgroundcolor="lightyellow" if noise else None)
    for ax, image, title in ((ax_early, state.early, f"PSPL attention at age {state.early_age:.2f} epochs"),
                             (ax_map, state.attention, f"... and now, at age {state.age:.2f}")):
        if image is not None:
            im = ax.imshow(image, cmap="viridis", vmin=0, vmax=max(pspl.gamma, 1e-12))
            fig.colorbar(im, ax=ax, shrink=0.75, label="weight")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"gamma={pspl.gamma:g} mu={pspl.mu:g} alpha={pspl.alpha:g} beta={pspl.beta:g} | tiny EDSR-baseline "
                 f"x2, embedded images, seed {pspl.seed}\n{describe_schedule(pspl)}", fontsize=8)
    return fig


def run_races(seeds, profile_name: str = "cpu", schedule: Schedule = Schedule(), results=None,
              data_root=None) -> list[RaceState]:
    """The race on one ``schedule`` once per seed (``race_configs``); finished races load at once. Returns one
    final ``RaceState`` per seed, in order."""
    return [run_race(race_configs(profile_name, schedule, s), results=results, data_root=data_root) for s in seeds]


def noise_table(states: list[RaceState]) -> pd.DataFrame:
    """How much races swing, one row per seed: per arm the largest change between two consecutive epochs
    (``swing_l1``, ``swing_pspl``, dB), the last epoch's PSNR of each arm and PSPL - L1 there (``gap``, dB)."""
    rows = []
    for st in states:
        rows.append(dict(seed=st.configs[1].seed, swing_l1=swing(st.curves["l1"]), swing_pspl=swing(st.curves["pspl"]),
                         final_l1=st.curves["l1"][-1][1], final_pspl=st.curves["pspl"][-1][1],
                         gap=st.curves["pspl"][-1][1] - st.curves["l1"][-1][1]))
    return pd.DataFrame(rows)


def draw_seed_band(states: list[RaceState]):
    """The same race over several seeds. Left: every seed's curves (thin) and, per arm, the range over seeds
    (band). Right: PSPL - L1 per seed and epoch, with 0 dashed: where one seed's line crosses 0, that seed
    alone could have told either story at that epoch."""
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
    pspl = states[0].configs[1]
    tables = {arm: pd.DataFrame([dict(seed=st.configs[1].seed, epoch=e, psnr=v) for st in states
                                 for e, v in st.curves[arm]]) for arm in ("l1", "pspl")}
    for arm, color in (("l1", "tab:blue"), ("pspl", "tab:red")):
        t = tables[arm]
        for _, run in t.groupby("seed"):
            ax.plot(run.epoch, run.psnr, color=color, lw=0.8, alpha=0.6)
        band = t.groupby("epoch").psnr.agg(["min", "max", "mean"])
        ax.fill_between(band.index, band["min"], band["max"], color=color, alpha=0.2,
                        label=f"{arm}: range over {t.seed.nunique()} seeds")
    ax.set(xlabel="epoch", ylabel=f"PSNR (dB), {pspl.val_set} (Y, shave 2)", title="every seed's race, and the range")
    ax.legend(fontsize=8, loc="lower right")
    gap = tables["pspl"].merge(tables["l1"], on=("seed", "epoch"), suffixes=("_pspl", "_l1"))
    for seed, run in gap.groupby("seed"):
        ax_gap.plot(run.epoch, run.psnr_pspl - run.psnr_l1, marker="o", ms=3, lw=1, label=f"seed {seed}")
    ax_gap.axhline(0, color="0.3", ls="--", lw=1)
    ax_gap.set(xlabel="epoch", ylabel="PSPL - L1 (dB)", title="the gap, seed by seed")
    ax_gap.legend(fontsize=8)
    for a in (ax, ax_gap):
        a.grid(alpha=0.3)
    fig.suptitle(f"gamma={pspl.gamma:g} mu={pspl.mu:g} alpha={pspl.alpha:g} beta={pspl.beta:g}, "
                 f"{len(states)} seeds\n{describe_schedule(pspl)}", fontsize=8)
    return fig


def png(fig) -> bytes:
    """The figure as PNG bytes (what the widget's Image shows)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


class Race:
    """The race's controller, without any widget: ``start(gamma, mu, alpha, beta)`` trains in a thread and
    ``stop()`` ends it; ``show(png_bytes)`` (set by the widget, or a test) receives every redraw."""

    def __init__(self, profile_name: str = "cpu", results=None, data_root=None, show=None):
        self.profile_name, self.results, self.data_root = profile_name, results, data_root
        self.show = show or (lambda image: None)
        self.fig = plt.figure(figsize=(12, 3.9), constrained_layout=True)
        plt.close(self.fig)  # drawn only into PNG bytes, never as a stray inline figure
        self.thread, self.halt, self.error = None, threading.Event(), None

    def redraw(self, state: RaceState) -> None:
        self.show(png(draw_race(self.fig, state)))

    def start(self, gamma=2.0, mu=-1.0, alpha=1.0, beta=0.0, seed=0) -> None:
        """Start a race with the sliders' settings (ends a running one first); settings PSPL rejects, such as
        alpha = beta = 0, and errors of the race go to ``self.error`` in one line."""
        self.stop()
        self.halt, self.error = threading.Event(), None
        try:
            configs = race_configs(self.profile_name, Schedule(gamma, mu, alpha, beta), int(seed))
        except ValueError as err:
            self.error = str(err)
            return

        def work():
            try:
                run_race(configs, self.redraw, self.halt, self.results, self.data_root)
            except Exception as err:  # shown in the widget: a thread's exception would vanish otherwise
                self.error = f"{type(err).__name__}: {err}"

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def stop(self, wait: bool = True) -> None:
        if self.thread and self.thread.is_alive():
            self.halt.set()
            if wait:
                self.thread.join()


def race_widget(profile_name: str = "cpu", results=None, data_root=None):
    """Sliders for gamma, mu, alpha, beta and the seed, a Start and a Stop button, and the race figure below."""
    import ipywidgets as W

    image, status = W.Image(format="png"), W.Label(value="Press Start: L1 and PSPL train side by side.")
    race = Race(profile_name, results, data_root, show=lambda b: setattr(image, "value", b))
    sliders = dict(schedule_sliders(prefix="race"), seed=W.IntSlider(value=0, min=0, max=9, description="seed"))
    start, halt = W.Button(description="Start", button_style="success"), W.Button(description="Stop")
    for name, widget in (("seed", sliders["seed"]), ("start", start), ("stop", halt), ("image", image),
                         ("status", status)):
        widget.add_class(f"race-{name}")  # stable handles for the browser test

    def on_start(_=None):
        race.start(**{k: s.value for k, s in sliders.items()})
        status.value = race.error or "racing... (finished settings load at once)"

    def on_stop(_=None):
        race.stop(wait=False)
        status.value = "stopped (after the current epoch): both runs keep their finished epochs and resume on Start"

    start.on_click(on_start)
    halt.on_click(on_stop)
    warning = W.HTML("<b>One seed, a few crops:</b> a single race swings from epoch to epoch by more than the gap "
                     "between L1 and PSPL. Change only the seed and press Start again to see how much.")
    return W.VBox([W.HBox(list(sliders.values())[:2]), W.HBox(list(sliders.values())[2:4]),
                   W.HBox([sliders["seed"], start, halt]), status, warning, image])

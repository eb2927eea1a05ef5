"""A live race: plain L1 and PSPL trained side by side on a small model while the reader watches.

``run_race`` alternates one epoch of each run (the trainer's ``train_epochs`` generators), calling back after
every epoch with both PSNR curves so far and PSPL's attention on a validation crop as it is *now*. Both runs
are ordinary run folders: a finished race loads instantly when its settings come back, and a stopped one
resumes where it stopped. ``draw_race`` is the figure, ``race_widget`` the sliders and buttons around them;
their callbacks are plain functions so tests call them directly.
"""
import io
import threading
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np

from pspl_nb.config import RunConfig, profile
from pspl_nb.runs import load_history, load_model, run_folder
from pspl_nb.train import Snapshotter, train_epochs

# The race on a laptop CPU: about a minute for both runs. CI (the smoke and rehearse profiles) races a few seconds.
RACE = {"smoke": dict(epochs=3, iters_per_epoch=6, batch=4, patch=16, milestones=(3,), eval_limit=2),
        "default": dict(epochs=20, iters_per_epoch=15, batch=8, patch=24, milestones=(15,), eval_limit=6)}


def race_configs(profile_name: str = "cpu", gamma: float = 2.0, mu: float = -1.0, alpha: float = 1.0,
                 beta: float = 0.0, seed: int = 0) -> tuple[RunConfig, RunConfig]:
    """(plain L1, PSPL) configs of a race: tiny EDSR-baseline x2 on the embedded images, the same seed, PSPL
    with the given gamma, mu, alpha, beta. ``profile_name`` "smoke" or "rehearse" gives the seconds-long CI
    race, any other the minute-long one. Raises ValueError (one line) for settings PSPL rejects, e.g. alpha = beta = 0."""
    size = RACE["smoke" if profile_name in ("smoke", "rehearse") else "default"]
    base = profile("smoke", **size, eval_sets=("embedded_valid",), attention_steps=(), seed=seed)
    return base.replace(weighting="none"), base.replace(gamma=gamma, mu=mu, alpha=alpha, beta=beta)


@dataclass
class RaceState:
    """What the figure shows: per arm the (epoch, PSNR dB) points so far, PSPL's latest attention map
    (H, W, mean over channels, on [0, gamma]) and its age (epochs), and whether the race ended or was stopped."""

    configs: tuple
    curves: dict = field(default_factory=lambda: {"l1": [], "pspl": []})
    attention: np.ndarray | None = None
    age: float = 0.0
    done: bool = False
    stopped: bool = False


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


def draw_race(fig, state: RaceState):
    """Redraw ``fig`` (None: a new figure): both validation-PSNR curves (dB against epoch) and PSPL's
    attention map now. Returns the figure."""
    if fig is None:
        fig = plt.figure(figsize=(10, 3.6), constrained_layout=True)
    fig.clear()
    ax_curve, ax_map = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(1.6, 1)))
    l1, pspl = state.configs
    for arm, color in (("l1", "tab:blue"), ("pspl", "tab:red")):
        if state.curves[arm]:
            epochs, values = zip(*state.curves[arm])
            ax_curve.plot(epochs, values, marker="o", ms=3, color=color, label=arm)
    ax_curve.set(xlim=(0.5, pspl.epochs + 0.5), xlabel="epoch", ylabel=f"PSNR (dB), {pspl.val_set} (Y, shave 2)",
                 title="finished" if state.done else "stopped" if state.stopped else "training...")
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=8, loc="lower right")
    if state.attention is not None:
        im = ax_map.imshow(state.attention, cmap="viridis", vmin=0, vmax=max(pspl.gamma, 1e-12))
        fig.colorbar(im, ax=ax_map, shrink=0.75, label="weight")
    ax_map.set_title(f"PSPL attention at age {state.age:.2f} epochs", fontsize=9)
    ax_map.axis("off")
    fig.suptitle(f"gamma={pspl.gamma:g} mu={pspl.mu:g} alpha={pspl.alpha:g} beta={pspl.beta:g} | tiny EDSR-baseline "
                 f"x2, embedded images, {pspl.epochs} x {pspl.iters_per_epoch} it x batch {pspl.batch}, seed {pspl.seed}",
                 fontsize=8)
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
        self.fig = plt.figure(figsize=(10, 3.6), constrained_layout=True)
        plt.close(self.fig)  # drawn only into PNG bytes, never as a stray inline figure
        self.thread, self.halt, self.error = None, threading.Event(), None

    def redraw(self, state: RaceState) -> None:
        self.show(png(draw_race(self.fig, state)))

    def start(self, gamma=2.0, mu=-1.0, alpha=1.0, beta=0.0) -> None:
        """Start a race with these settings (ends a running one first); errors go to ``self.error``."""
        self.stop()
        self.halt, self.error = threading.Event(), None
        try:
            configs = race_configs(self.profile_name, gamma, mu, alpha, beta)
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
    """Sliders for gamma, mu, alpha, beta, a Start and a Stop button, and the race figure below them."""
    import ipywidgets as W

    image, status = W.Image(format="png"), W.Label(value="Press Start: L1 and PSPL train side by side.")
    race = Race(profile_name, results, data_root, show=lambda b: setattr(image, "value", b))
    sliders = dict(gamma=W.FloatSlider(value=2.0, min=0.0, max=4.0, step=0.1, description="gamma"),
                   mu=W.FloatSlider(value=-1.0, min=-1.0, max=1.0, step=0.1, description="mu"),
                   alpha=W.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05, description="alpha"),
                   beta=W.FloatSlider(value=0.0, min=0.0, max=3.0, step=0.05, description="beta"))
    start, halt = W.Button(description="Start", button_style="success"), W.Button(description="Stop")
    for name, widget in (*sliders.items(), ("start", start), ("stop", halt), ("image", image), ("status", status)):
        widget.add_class(f"race-{name}")  # stable handles for the browser test

    def on_start(_=None):
        race.start(**{k: s.value for k, s in sliders.items()})
        status.value = race.error or "racing... (finished settings load at once)"

    def on_stop(_=None):
        race.stop(wait=False)
        status.value = "stopped (after the current epoch): both runs keep their finished epochs and resume on Start"

    start.on_click(on_start)
    halt.on_click(on_stop)
    return W.VBox([W.HBox(list(sliders.values())[:2]), W.HBox(list(sliders.values())[2:]), W.HBox([start, halt, status]),
                   image])

"""Sliders for the notebooks. Each widget's callback is a plain function (``update_explorer``,
``update_training_view``) that redraws a figure; tests call those directly, because ipywidgets swallows
exceptions raised inside callbacks.
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

from pspl_nb.plots import draw_explorer, training_attention
from pspl_nb.pspl import Schedule
from pspl_nb.ssim import ssim_map


def ssim_maps(sr: np.ndarray, hr: np.ndarray) -> dict:
    """SSIM maps (H, W), mean over RGB, of uint8 images (H, W, 3) under both PSPL settings on [0, 255] data.

    "official": C1 = 1e-4, C2 = 9e-4 (the official code on [0, 255]); "paper": range-matched constants.
    """
    x, y = (torch.from_numpy(a.transpose(2, 0, 1)).double()[None] for a in (sr, hr))
    return {"official": ssim_map(x, y, 255.0, c1=1e-4, c2=9e-4)[0].mean(0).numpy(),
            "paper": ssim_map(x, y, 255.0)[0].mean(0).numpy()}


def update_explorer(fig, maps: dict, gamma=2.0, mu=-1.0, alpha=1.0, beta=0.0, step=1.0, ssim="official"):
    """The explorer's slider callback: redraw ``fig`` for these values and return it (see ``plots.draw_explorer``).

    alpha = beta = 0 has no attention (delta is 0 at every step): the figure says so instead of failing.
    """
    if alpha == 0 and beta == 0:
        fig.clear()
        fig.text(0.5, 0.5, "alpha = beta = 0: delta is 0 at every step, PSPL is undefined.\n"
                 "Raise alpha (growth per epoch) or beta (start width).", ha="center", va="center")
        return fig
    return draw_explorer(fig, maps, Schedule(gamma, mu, alpha, beta), step, ssim)


def schedule_sliders(prefix: str = "pspl") -> dict:
    """Sliders for PSPL's gamma, mu, alpha and beta at the paper's values, each with the CSS class
    ``<prefix>-<name>`` (stable handles for the browser test, tests/test_browser.py)."""
    import ipywidgets as W

    sliders = dict(gamma=W.FloatSlider(value=2.0, min=0.0, max=4.0, step=0.1, description="gamma"),
                   mu=W.FloatSlider(value=-1.0, min=-1.0, max=1.0, step=0.1, description="mu"),
                   alpha=W.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05, description="alpha"),
                   beta=W.FloatSlider(value=0.0, min=0.0, max=3.0, step=0.05, description="beta"))
    for name, slider in sliders.items():
        slider.add_class(f"{prefix}-{name}")
    return sliders


def explorer(sr: np.ndarray, hr: np.ndarray):
    """Sliders for gamma, mu, alpha, beta, step and the SSIM mode over one SR/HR pair (uint8 (H, W, 3))."""
    import ipywidgets as W
    from IPython.display import display

    maps = ssim_maps(sr, hr)
    controls = dict(
        **schedule_sliders(),
        step=W.FloatLogSlider(value=1.0, base=2, min=-6, max=6, step=0.25, description="step (epochs)",
                              style={"description_width": "initial"}),
        ssim=W.ToggleButtons(options=["official", "paper"], value="official", description="SSIM"),
    )
    out = W.Output()
    for name, widget in (("step", controls["step"]), ("ssim", controls["ssim"]), ("figure", out)):
        widget.add_class(f"pspl-{name}")
    fig = plt.figure(figsize=(12, 3.4), constrained_layout=True)
    plt.close(fig)  # drawn only inside the Output widget, never as a stray inline figure

    def redraw(_=None):
        update_explorer(fig, maps, **{k: c.value for k, c in controls.items()})
        with out:
            out.clear_output(wait=True)
            display(fig)

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox(list(controls.values())[:3]), W.HBox(list(controls.values())[3:]), out])


def update_training_view(snap: dict, index: int, gamma: float = 2.0):
    """Callback of the recorded-steps slider: a new figure of the attention at recorded age number ``index``."""
    index = int(np.clip(index, 0, len(snap["ages"]) - 1))
    new = training_attention(snap, index, gamma)
    plt.close(new)
    return new


def training_view(snap: dict, gamma: float = 2.0):
    """A slider over the ages recorded in a run's ``attention.npz`` (notebook 04)."""
    import ipywidgets as W
    from IPython.display import display

    slider = W.IntSlider(value=0, min=0, max=len(snap["ages"]) - 1, description="recorded step")
    out = W.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            display(update_training_view(snap, slider.value, gamma))

    slider.observe(redraw, names="value")
    redraw()
    return W.VBox([slider, out])

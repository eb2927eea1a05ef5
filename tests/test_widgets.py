"""Slider callbacks called directly (ipywidgets would swallow their exceptions) over a grid of values,
edges included; each must redraw a different figure."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pspl_nb import plots, widgets  # noqa: E402


@pytest.fixture(scope="module")
def maps():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-30, 30, hr.shape), 0, 255).astype(np.uint8)
    return widgets.ssim_maps(sr, hr)


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


DEFAULT = dict(gamma=2.0, mu=-1.0, alpha=1.0, beta=0.0, step=1.0, ssim="official")
EDGES = [dict(gamma=0.0), dict(alpha=0.0, beta=0.5), dict(step=0.0), dict(mu=1.0), dict(ssim="paper"),
         dict(step=64.0), dict(step=2 ** -6), dict(gamma=4.0, beta=3.0), dict(alpha=0.0, beta=0.0)]


@pytest.mark.parametrize("change", EDGES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_explorer_callback_redraws_for_every_edge(maps, change):
    fig = plt.figure(figsize=(8, 2.5))
    before = png(widgets.update_explorer(fig, maps, **DEFAULT))
    after = png(widgets.update_explorer(fig, maps, **{**DEFAULT, **change}))
    plt.close(fig)
    assert before != after


def test_explorer_shows_the_attention_it_claims(maps):
    fig = plt.figure()
    widgets.update_explorer(fig, maps, **{**DEFAULT, "step": 2.0})
    image = [ax for ax in fig.axes if ax.images][0].images[0].get_array()
    expected = 2.0 * np.exp(-((maps["official"] + 1) / 2.0) ** 2)
    np.testing.assert_allclose(np.asarray(image), expected, rtol=1e-6)
    plt.close(fig)


def test_ssim_maps_differ_between_settings_as_documented(maps):
    assert maps["official"].shape == maps["paper"].shape == (40, 48)
    assert maps["paper"].mean() > maps["official"].mean()  # range-matched constants forgive more


def test_training_view_callback_covers_every_recorded_step():
    rng = np.random.default_rng(1)
    snap = dict(ages=np.array([0.1, 1.0, 4.0]), hr=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                sr=rng.integers(0, 255, (3, 3, 16, 16), dtype=np.uint8),
                attention=np.stack([np.full((3, 16, 16), v) for v in (0.1, 1.0, 1.9)]).astype(np.float32))
    images = [png(widgets.update_training_view(snap, i)) for i in (-5, 0, 1, 2, 99)]
    assert images[0] == images[1] and images[3] == images[4]  # out-of-range indices clamp
    assert len(set(images[1:4])) == 3


def test_the_widgets_build_and_react(maps, monkeypatch):
    """Every control of the explorer redraws the figure with its own new value (the callback is recorded as
    the widget calls it), starting from a first drawing at the paper's values."""
    calls = []
    real = widgets.update_explorer
    monkeypatch.setattr(widgets, "update_explorer", lambda fig, m, **values: calls.append(values) or real(fig, m, **values))
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    box = widgets.explorer(hr, hr)
    sliders = [w for row in box.children[:2] for w in row.children]
    assert calls == [DEFAULT]
    for name, s in zip(DEFAULT, sliders):
        new = s.max if hasattr(s, "max") else "paper"
        s.value = new  # fires the callback; an exception here would propagate in a test
        assert calls[-1] == {**calls[-2], name: new}, name
    assert len(calls) == 1 + len(DEFAULT)
    assert any(s.description == "gamma" for s in sliders)


def test_static_grid_uses_the_slider_drawing(maps):
    figs = plots.explorer_grid(maps, steps=(0.5, 2))
    assert len(figs) == 2 and png(figs[0]) != png(figs[1])
    for f in figs:
        plt.close(f)

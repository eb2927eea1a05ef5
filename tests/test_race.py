"""The live race: its driver, its figure and its controller, called directly (the browser test presses the
widget's buttons)."""
import threading

import numpy as np
import pytest

from pspl_nb.pspl import Schedule
from pspl_nb.race import (Race, describe_schedule, draw_race, draw_seed_band, noise_table, race_configs, race_widget,
                          run_race, run_races, schedule, swing)


def test_race_trains_both_arms_in_turn_and_reports_every_epoch(tmp_path, data_root):
    configs = race_configs("smoke", Schedule(alpha=0.5))
    assert configs[0].weighting == "none" and configs[1].alpha == 0.5 and configs[0].seed == configs[1].seed
    seen = []
    state = run_race(configs, on_update=lambda s: seen.append({k: len(v) for k, v in s.curves.items()}),
                     results=tmp_path, data_root=data_root)
    epochs = configs[1].epochs
    assert state.done and not state.stopped
    assert [len(state.curves[a]) for a in ("l1", "pspl")] == [epochs, epochs]
    assert seen[:3] == [{"l1": 1, "pspl": 0}, {"l1": 1, "pspl": 1}, {"l1": 2, "pspl": 1}]  # one epoch each in turn
    assert state.attention.ndim == 2 and 0 <= state.attention.min() and state.attention.max() <= configs[1].gamma
    assert state.age == epochs
    fig = draw_race(None, state)
    assert [len(ax.lines) for ax in fig.axes[:1]] == [2]

    again = []
    cached = run_race(configs, on_update=again.append, results=tmp_path, data_root=data_root)
    assert len(again) == 1  # finished runs load: one redraw, no training
    assert cached.curves == state.curves and np.allclose(cached.attention, state.attention, atol=1e-6)


def test_a_stopped_race_keeps_its_epochs_and_resumes(tmp_path, data_root):
    configs = race_configs("smoke", seed=3)
    stop = threading.Event()

    def halt_after_first_pspl_epoch(state):
        if state.curves["pspl"]:
            stop.set()

    state = run_race(configs, halt_after_first_pspl_epoch, stop, results=tmp_path, data_root=data_root)
    assert state.stopped and len(state.curves["pspl"]) == 1
    first = []
    rest = run_race(configs, lambda s: first.append(len(s.curves["pspl"])) if not first else None,
                    results=tmp_path, data_root=data_root)
    assert rest.done and len(rest.curves["pspl"]) == configs[1].epochs
    assert first == [1]  # at the first redraw (after L1's next epoch) the stopped PSPL epoch is already drawn


def test_controller_reports_bad_settings_in_one_line_and_draws_in_a_thread(tmp_path, data_root):
    shown = []
    race = Race("smoke", results=tmp_path, data_root=data_root, show=shown.append)
    race.start(alpha=0.0, beta=0.0)
    assert race.thread is None and "alpha=0 and beta=0" in race.error
    race.start(gamma=1.5)
    race.thread.join(timeout=300)
    assert race.error is None and shown and all(b.startswith(b"\x89PNG") for b in shown)


def test_the_schedule_is_stated_and_the_ramp_placed():
    _, pspl = race_configs("cpu")
    plan = schedule(pspl)
    assert plan["iterations"] == pspl.epochs * pspl.iters_per_epoch
    # weights of SSIM 0..1 within 10% of each other: exp(3 / delta^2) <= 1.1, delta = alpha * age
    assert plan["ramp_epoch"] == pytest.approx(np.sqrt(3 / np.log(1.1)), rel=1e-9)
    assert plan["ramp_iteration"] == pytest.approx(plan["ramp_epoch"] * pspl.iters_per_epoch)
    assert f"iteration {plan['ramp_iteration']:.0f}" in describe_schedule(pspl)
    assert "never" in describe_schedule(race_configs("cpu", Schedule(alpha=0.0, beta=3.0))[1])
    assert schedule(race_configs("cpu", Schedule(alpha=0.3))[1])["ramp_epoch"] == pytest.approx(plan["ramp_epoch"] / 0.3)


def test_several_seeds_give_a_band_a_noise_table_and_an_early_map(tmp_path, data_root):
    states = run_races((0, 1), "smoke", results=tmp_path, data_root=data_root)
    assert [s.configs[1].seed for s in states] == [0, 1]
    for st in states:  # the map after one epoch is kept beside the last one, also when a run is loaded
        assert st.early is not None and st.early_age == pytest.approx(1.0) and st.early.shape == st.attention.shape
    loaded = run_races((1,), "smoke", results=tmp_path, data_root=data_root)[0]
    np.testing.assert_array_equal(loaded.early, states[1].early)
    table = noise_table(states)
    l1 = np.array([v for _, v in states[0].curves["l1"]])
    assert table.loc[0, "swing_l1"] == pytest.approx(np.abs(np.diff(l1)).max())
    assert table.loc[1, "gap"] == pytest.approx(states[1].curves["pspl"][-1][1] - states[1].curves["l1"][-1][1])
    fig = draw_seed_band(states)
    assert len(fig.axes[1].lines) == len(states) + 1  # one gap line per seed and the zero line
    assert swing([(1, 30.0)]) != swing([(1, 30.0)])  # one point: no swing (NaN)


def test_the_widget_has_a_seed_and_races_it(tmp_path, data_root):
    shown = []
    r = Race("smoke", results=tmp_path, data_root=data_root, show=shown.append)
    r.start(seed=4)
    r.thread.join(timeout=300)
    assert r.error is None and shown
    assert sorted("-s4-" in p.name for p in (tmp_path / "runs").iterdir()) == [True, True]  # both arms, seed 4
    widget = race_widget("smoke", results=tmp_path, data_root=data_root)
    descriptions = [w.description for row in widget.children if hasattr(row, "children") for w in row.children
                    if hasattr(w, "description")]
    assert "seed" in descriptions

"""The live race: its driver, its figure and its controller, called directly (the browser test presses the
widget's buttons)."""
import threading

import numpy as np
import pytest

from pspl_nb.race import Race, draw_race, race_configs, run_race


def test_race_trains_both_arms_in_turn_and_reports_every_epoch(tmp_path, data_root):
    configs = race_configs("smoke", alpha=0.5)
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

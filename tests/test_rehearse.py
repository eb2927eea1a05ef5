"""The rehearsal's plan and projection (the rehearsal itself runs as `make rehearse` in CI)."""
import collections
import math

import pandas as pd
import pytest

from pspl_nb.config import profile
from pspl_nb.rehearse import planned_runs, projection


def test_the_plan_is_every_run_the_notebooks_train_once():
    plan = planned_runs("gpu")
    ids = [c.run_id() for c in plan]
    assert len(ids) == len(set(ids))
    arms = {(c.model, c.scale, c.arm) for c in plan}
    assert {("edsr_baseline", 2, a) for a in ("l1", "pspl", "uniform", "contrast")} <= arms  # notebooks 03 and 07
    assert {(m, 4, "pspl") for m in ("srcnn", "vdsr", "drrn", "lapsrn", "edsr")} <= arms  # notebook 05
    t1 = [c for c in plan if c.scale == 4]
    assert all(c.test_sets == ("Set5", "Set14", "B100", "Urban100") for c in t1)  # all four, every image
    assert all(c.numerics() in ("cpu-cl", "cuda-bf16-cl") for c in plan)
    # counted by hand: notebook 03's l1 and pspl on 3 seeds are among notebook 07's 4 arms x 3 seeds (12 runs),
    # notebook 05 trains 5 models x {plain, PSPL} on one seed (10): 22 runs, each arm on its own seeds
    assert len(plan) == 22
    counts = collections.Counter((c.model, c.scale, c.arm) for c in plan)
    assert {k: v for k, v in counts.items() if k[1] == 2} == {("edsr_baseline", 2, a): 3
                                                            for a in ("l1", "pspl", "uniform", "contrast")}
    assert sorted(c.seed for c in plan if c.scale == 2 and c.arm == "uniform") == [0, 1, 2]
    assert all(v == 1 for k, v in counts.items() if k[1] == 4) and len([k for k in counts if k[1] == 4]) == 10
    assert {c.base for c in t1 if c.model in ("srcnn", "lapsrn")} == {"l2"}  # their official MSE loss


def test_projection_multiplies_iterations_by_the_measured_pace_of_the_same_shape():
    c = profile("gpu", model="edsr_baseline", epochs=10, iters_per_epoch=100)
    same = dict(model="edsr_baseline", size="full", scale=2, batch=16, patch=48, numerics=c.numerics())
    rates = pd.DataFrame([dict(same, s_per_it=0.01, eval_s=30.0), dict(same, s_per_it=0.03, eval_s=50.0)])
    row = projection([c, c.replace(model="vdsr")], rates).set_index("model")
    # median pace 0.02 s/it x 1000 it + 10 epochs x 40 s of evaluation = 420 s
    assert row.loc["edsr_baseline", "hours"] == pytest.approx(420 / 3600)
    assert math.isnan(row.loc["vdsr", "hours"])  # a shape the rehearsal did not measure is not guessed


def test_rates_are_keyed_by_numerics_so_an_fp32_plan_never_takes_a_bf16_pace():
    bf16 = profile("gpu", device="cuda", model="edsr_baseline", epochs=10, iters_per_epoch=100)
    fp32 = profile("paper", device="cuda", model="edsr_baseline", epochs=10, iters_per_epoch=100)
    assert (bf16.numerics(), fp32.numerics()) == ("cuda-bf16-cl", "cuda")
    rates = pd.DataFrame([dict(model="edsr_baseline", size="full", scale=2, batch=16, patch=48, numerics="cuda-bf16-cl",
                               s_per_it=0.005, eval_s=10.0)])
    table = projection([bf16, fp32], rates).set_index("run_id")
    assert table.loc[bf16.run_id(), "hours"] == pytest.approx((1000 * 0.005 + 10 * 10.0) / 3600)
    assert math.isnan(table.loc[fp32.run_id(), "hours"])


def test_measured_rates_come_from_the_last_epoch(tmp_path, data_root):
    """The first epoch also pays for start-up (loader workers, cuDNN's search, first evaluation of each
    shape): its evaluation must not be averaged into the rate. Here epoch 1's evaluation took 100 s, epoch 2's 10 s."""
    from pspl_nb.rehearse import measured_rates
    from pspl_nb.train import train

    c = profile("smoke", epochs=2, seed=5)
    train(c, results=tmp_path, data_root=data_root, progress=False)
    history = tmp_path / "runs" / c.run_id() / "history.csv"
    h = pd.read_csv(history).assign(train_time=[1.0, 2.0], wall_time=[101.0, 113.0])
    h.to_csv(history, index=False)
    rate = measured_rates(tmp_path).iloc[0]
    assert rate.s_per_it == pytest.approx(2.0 / c.iters_per_epoch) and rate.eval_s == pytest.approx(10.0)
    assert rate.numerics == c.numerics()


def test_missing_shapes_and_numerics_are_measured_by_short_runs_of_their_own(tmp_path, data_root):
    from pspl_nb.rehearse import SHAPE, measure_missing, shape

    measured = profile("smoke", seed=1)
    other = measured.replace(channels_last=True)  # the same shape in other numerics
    rates = pd.DataFrame([dict(zip(SHAPE, shape(measured)), s_per_it=0.1, eval_s=1.0)])
    plans = [measured, other, other.replace(seed=2)]
    out = measure_missing(plans, rates, tmp_path / "rates", data_root, epochs=2, iters=3)
    runs = list((tmp_path / "rates" / "runs").iterdir())
    assert len(runs) == 1 and len(out) == 2  # one short run, of the missing numerics only
    assert set(out.numerics) == {measured.numerics(), other.numerics()} and (out.s_per_it > 0).all()

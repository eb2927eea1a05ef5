"""The rehearsal's plan and projection (the rehearsal itself runs as `make rehearse` in CI)."""
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


def test_projection_multiplies_iterations_by_the_measured_pace_of_the_same_shape():
    c = profile("gpu", model="edsr_baseline", epochs=10, iters_per_epoch=100)
    rates = pd.DataFrame([dict(model="edsr_baseline", size="full", scale=2, batch=16, patch=48, s_per_it=0.01, eval_s=30.0),
                          dict(model="edsr_baseline", size="full", scale=2, batch=16, patch=48, s_per_it=0.03, eval_s=50.0)])
    row = projection([c, c.replace(model="vdsr")], rates).set_index("model")
    # median pace 0.02 s/it x 1000 it + 10 epochs x 40 s of evaluation = 420 s
    assert row.loc["edsr_baseline", "hours"] == pytest.approx(420 / 3600)
    assert math.isnan(row.loc["vdsr", "hours"])  # a shape the rehearsal did not measure is not guessed

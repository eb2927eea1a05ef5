"""The checks and demonstrations the notebooks' exercises rely on: the "your turn" check of Eq. 7 with right and
wrong answers, the hand-written training step against the trainer's, and Adam under scaled losses."""
import contextlib
import copy

import numpy as np
import pytest
import torch

from pspl_nb import exercises, train
from pspl_nb.config import profile
from pspl_nb.pspl import Schedule
from pspl_nb.ssim import ssim_map


def right(ms, delta, gamma=2.0, mu=-1.0):
    return gamma * torch.exp(-((ms - mu) / delta) ** 2)


def test_a_right_answer_is_right_and_the_shipped_line_is_named():
    assert exercises.check_attention(right).verdict == "right"
    shipped = exercises.check_attention(lambda ms, delta, gamma=2.0, mu=-1.0:
                                        exercises.kit_attention(ms, delta, gamma, mu))
    assert shipped.verdict == "kit" and shipped.ok and "kit" in shipped.message
    as_numpy = exercises.check_attention(lambda ms, delta, gamma=2.0, mu=-1.0: right(ms, delta, gamma, mu).numpy())
    assert as_numpy.verdict == "right"


@pytest.mark.parametrize("answer, says", [
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(-((ms - mu) ** 2) / d), "delta squared"),
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(-(((ms + 1) / d) ** 2)), "official code"),
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(-(((ms + mu) / d) ** 2)), "subtracting"),
    (lambda ms, d, gamma=2.0, mu=-1.0: torch.exp(-(((ms - mu) / d) ** 2)), "gamma is missing"),
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(-((ms - mu) ** 2) / (2 * d * d)), "2 delta^2"),
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(((ms - mu) / d) ** 2), "minus sign"),
    (lambda ms, d, gamma=2.0, mu=-1.0: gamma * torch.exp(-(((ms - mu) / d) ** 3)), "at Ms ="),
    (lambda ms, d, gamma=2.0, mu=-1.0: right(ms, d, gamma, mu).mean(), "shape"),
])
def test_a_wrong_answer_is_wrong_and_says_why(answer, says):
    result = exercises.check_attention(answer)
    assert result.verdict == "wrong" and not result.ok
    assert says in result.message


def test_unwritten_raising_and_in_place_answers_are_explained():
    assert exercises.check_attention(lambda ms, d, gamma=2.0, mu=-1.0: ...).verdict == "missing"
    raised = exercises.check_attention(lambda ms, d, gamma=2.0, mu=-1.0: undefined_name)  # noqa: F821
    assert raised.verdict == "error" and "NameError" in raised.message
    in_place = exercises.check_attention(lambda ms, d, gamma=2.0, mu=-1.0: ms.sub_(mu).div_(d).square_().neg_().exp_())
    assert in_place.verdict == "error" and "in place" in in_place.message
    from pspl_nb import pspl
    assert exercises.kit_attention is not None and pspl.attention.__name__ == "attention"  # spies removed


@pytest.mark.parametrize("age", [1.0, 1 / 12])
def test_the_step_written_out_equals_the_trainers_step(age, data_root, monkeypatch):
    """Notebook 04's cell, on the smoke profile: the same start, batch and age give bit-identical parameters."""
    monkeypatch.setenv("PSPL_DATA", str(data_root))  # first_step reads the default data root, as the notebook does
    c = profile("smoke", model="edsr_baseline", weighting="pspl", seed=1)
    start, lr_batch, hr_batch = exercises.first_step(c)
    assert lr_batch.shape == (c.batch, 3, c.patch, c.patch) and hr_batch.shape[-1] == c.patch * c.scale
    assert 0 <= lr_batch.min() and hr_batch.max() <= c.rgb_range
    mine = copy.deepcopy(start)
    adam = exercises.adam_for(mine, c)
    sr = mine(lr_batch)
    with torch.no_grad():
        ms = ssim_map(sr, hr_batch, c.rgb_range, c1=1e-4, c2=9e-4)
        ma = c.gamma * torch.exp(-((ms - c.mu) / (c.alpha * age + c.beta)) ** 2)
    loss = (ma * (sr - hr_batch)).abs().mean()
    adam.zero_grad()
    loss.backward()
    adam.step()
    theirs = copy.deepcopy(start)
    train.train_step(theirs, train.make_criterion(c), exercises.adam_for(theirs, c), lr_batch, hr_batch, age,
                     contextlib.nullcontext())
    table = exercises.compare_parameters(mine, theirs, start)
    assert table.equal.all() and table.max_difference.max() == 0
    if age == 1.0:  # a living step moves the parameters by lr (Adam's first step)
        assert table.max_step.max() == pytest.approx(c.lr, rel=1e-3)
    broken = copy.deepcopy(theirs)
    with torch.no_grad():
        next(broken.parameters()).add_(1e-6)
    assert not exercises.compare_parameters(mine, broken, start).equal.all()


def test_the_first_batch_is_the_trainers_first_batch(data_root, monkeypatch):
    monkeypatch.setenv("PSPL_DATA", str(data_root))  # first_step reads the default data root, as the notebook does
    from pspl_nb.data import TrainPatches
    from pspl_nb.data.datasets import EpochBatches

    c = profile("smoke", model="edsr_baseline", seed=2)
    _, lr_batch, hr_batch = exercises.first_step(c)
    patches = TrainPatches(c.dataset, c.scale, c.patch, c.batch, c.iters_per_epoch, c.seed)
    first = next(iter(EpochBatches(c.iters_per_epoch, c.batch)))
    low = torch.stack([patches[i][0] for i in first]).float()
    assert torch.equal(low, lr_batch)


@pytest.fixture(scope="module")
def steps():
    values = np.random.default_rng(0).uniform(0, 1, 500)
    return exercises.adam_step_sizes(exercises.loss_scale_schedules(values, steps=600))


def test_adam_ignores_a_constant_scale_and_stalls_below_eps(steps):
    wide = steps.pivot(index="step", columns="schedule", values="step_size")
    np.testing.assert_allclose(wide["constant 0.01"], wide["constant 1"], rtol=1e-4)
    np.testing.assert_allclose(wide["constant 100"], wide["constant 1"], rtol=1e-6)
    assert (wide["constant 1e-10"] < 0.01 * wide["constant 1"]).all()


def test_a_rising_scale_first_stalls_then_enlarges_adams_steps(steps):
    summary = exercises.step_size_summary(steps, split=300)
    for name in ("PSPL, 40 it/epoch", "PSPL, 1000 it/epoch"):
        assert summary.loc[name, "frozen_steps"] > 0
        assert summary.loc[name, "largest_ratio"] > 1.2
    assert summary.loc["constant 100", "largest_ratio"] == pytest.approx(1.0)
    assert list(summary.index) == list(dict.fromkeys(steps.schedule))


def test_pspl_mean_weight_rises_from_zero_to_gamma():
    w = exercises.pspl_mean_weight(np.linspace(0, 1, 101), ages=[0.01, 1, 100], schedule=Schedule(gamma=2.0))
    assert w[0] < 1e-100 and 0.1 < w[1] < 1.5 and w[2] == pytest.approx(2.0, rel=1e-3)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="schedules"):
        exercises.adam_step_sizes({"a": np.ones(5), "b": -np.ones(5)})

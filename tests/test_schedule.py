"""PSPL's schedule in closed form: the weights of Eq. 7-8 at given ages, and when they flatten."""
import math

import pytest
import torch

from pspl_nb.pspl import Schedule
from pspl_nb.schedule import flattening_table, nonuniform_fraction


def test_flattening_table_reference_numbers_and_closed_form():
    table = flattening_table().set_index("epoch")
    for epoch, ratio in [(1, 20), (2, 2.1), (5, 1.13), (10, 1.03)]:
        assert table.loc[epoch, "w(0)/w(1)"] == pytest.approx(ratio, rel=0.02)
    for epoch, row in table.iterrows():
        assert row.delta == pytest.approx(epoch)
        for ms in (-1, 0, 0.5, 1):
            assert row[f"w({ms:g})"] == pytest.approx(2 * math.exp(-((ms + 1) ** 2) / epoch**2), rel=1e-12)


def test_flattening_table_follows_alpha_beta():
    table = flattening_table(Schedule(gamma=1.0, alpha=0.3, beta=0.5), epochs=(1, 3)).set_index("epoch")
    for epoch in (1, 3):
        delta = 0.3 * epoch + 0.5
        assert table.loc[epoch, "delta"] == pytest.approx(delta)
        assert table.loc[epoch, "w(0)/w(1)"] == pytest.approx(math.exp(3 / delta**2), rel=1e-12)


def test_nonuniform_fraction_hard_first_closed_form():
    out = nonuniform_fraction(300)
    delta = math.sqrt(((1 + 1) ** 2 - (0 + 1) ** 2) / math.log(1.1))  # w(0)/w(1) = 1.1
    assert out["epoch_uniform"] == pytest.approx(delta, rel=1e-12)
    assert out["fraction"] == pytest.approx(delta / 300, rel=1e-12)
    # at that age the attention itself is within 10% of uniform over SSIM in [0, 1]
    w = Schedule().weights(torch.linspace(0, 1, 101, dtype=torch.float64), out["epoch_uniform"])
    assert (w.max() / w.min()).item() == pytest.approx(1.1, rel=1e-9)


def test_nonuniform_fraction_easy_first_and_schedule():
    easy = nonuniform_fraction(300, Schedule(mu=1.0))  # farthest point SSIM 0 at distance 1, nearest at 0
    assert easy["epoch_uniform"] == pytest.approx(math.sqrt(1 / math.log(1.1)), rel=1e-12)
    w = Schedule(mu=1.0).weights(torch.linspace(0, 1, 101, dtype=torch.float64), easy["epoch_uniform"])
    assert (w.max() / w.min()).item() == pytest.approx(1.1, rel=1e-9)
    slow = nonuniform_fraction(300, Schedule(alpha=0.3, beta=0.5))
    assert slow["epoch_uniform"] == pytest.approx((math.sqrt(3 / math.log(1.1)) - 0.5) / 0.3, rel=1e-12)


def test_nonuniform_fraction_caps():
    assert nonuniform_fraction(2)["fraction"] == 1.0  # a 2-epoch run never gets uniform weights
    already = nonuniform_fraction(300, Schedule(beta=10.0))  # wide from the start
    assert already["epoch_uniform"] == 0.0 and already["fraction"] == 0.0
    frozen = nonuniform_fraction(300, Schedule(alpha=0.0, beta=1.0))  # delta never grows
    assert math.isinf(frozen["epoch_uniform"]) and frozen["fraction"] == 1.0
    with pytest.raises(ValueError, match="tol"):
        nonuniform_fraction(300, tol=0.0)
    with pytest.raises(ValueError, match="total_epochs"):
        nonuniform_fraction(0)

"""RunConfig: JSON round trip, run ids, profiles and one-line validation errors."""
import pytest

from pspl_nb.config import PROFILES, RunConfig, profile
from pspl_nb.train import learning_rate, parse_override


def test_json_round_trip_gives_an_equal_object(tmp_path):
    c = profile("cpu", model="drrn", channels="y", seed=3, milestones=(5, 9), eval_limit=2)
    c.save(tmp_path / "c.json")
    back = RunConfig.load(tmp_path / "c.json")
    assert back == c and back.run_id() == c.run_id()


def test_run_id_follows_science_not_execution():
    c = profile("smoke", device="cpu")
    assert c.run_id() == profile("smoke", device="cpu").run_id()
    assert c.run_id() == c.replace(workers=2, loader="device").run_id()  # same batches bit for bit
    assert c.run_id().startswith("edsr_baseline-tiny-x2-pspl-s0-")
    assert c.replace(weighting="none").run_id().startswith("edsr_baseline-tiny-x2-l1-s0-")


@pytest.mark.parametrize("field, value", [
    ("seed", 1), ("alpha", 0.3), ("lr_mult", 2.0), ("adam_beta2", 0.99), ("moments", "float32"),
    ("weighting", "contrast"), ("test_sets", ("Set5",)), ("eval_limit", 1), ("channels_last", True), ("compile", True),
])
def test_every_field_that_can_change_results_changes_the_run_id(field, value):
    c = profile("smoke", device="cpu")
    assert c.replace(**{field: value}).run_id() != c.run_id()


def test_bf16_and_fp32_runs_live_side_by_side():
    fp32 = profile("gpu", device="cuda", amp=False)
    bf16 = fp32.replace(amp=True)
    assert (fp32.numerics(), bf16.numerics()) == ("cuda-cl", "cuda-bf16-cl")
    assert fp32.run_id() != bf16.run_id()
    # autocast is off on a CPU, so there amp changes nothing and the runs are the same
    assert profile("smoke", device="cpu", amp=True).run_id() == profile("smoke", device="cpu").run_id()
    # a CUDA run and a CPU run of the same config are different runs (different kernels)
    assert profile("smoke", device="cuda").run_id() != profile("smoke", device="cpu").run_id()


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_decays_its_lr_inside_the_run_and_says_whether_it_is_the_paper(name):
    c = profile(name)
    assert all(0 < m < c.epochs for m in c.milestones), "an lr milestone outside the run never fires"
    assert ("The paper's schedule." in c.describe()) == (name == "paper")


def test_profile_comments_state_where_pspls_weights_flatten():
    """Weights within 10% of uniform (alpha 1): after ~220 iterations on cpu (47% of the run), after ~560 on
    cpu_long (28% of its 2,000), both shorter than Adam's ~1000-step memory, as the profiles' comments say."""
    from pspl_nb.schedule import nonuniform_fraction

    for name, iterations, share in (("cpu", 220, 0.47), ("cpu_long", 560, 0.28)):
        c = profile(name)
        flat = nonuniform_fraction(c.epochs, c.schedule())
        assert flat["epoch_uniform"] * c.iters_per_epoch == pytest.approx(iterations, rel=0.05)
        assert flat["fraction"] == pytest.approx(share, abs=0.01)
        assert flat["epoch_uniform"] * c.iters_per_epoch < 1 / (1 - c.adam_beta2)


def test_paper_profile_is_the_official_schedule():
    c = profile("paper")
    assert (c.epochs, c.milestones, c.lr, c.lr_decay, c.batch, c.iters_per_epoch, c.patch) == \
        (300, (200,), 1e-4, 0.5, 16, 1000, 48)
    assert (c.gamma, c.mu, c.alpha, c.beta, c.ssim, c.rgb_range) == (2.0, -1.0, 1.0, 0.0, "official", 255.0)


@pytest.mark.parametrize("changes, match", [
    (dict(model="lapsrn", scale=3), r"RunConfig.scale=3: lapsrn supports scales \(2, 4, 8\) \(LapSRN"),
    (dict(model="edsr_baseline", scale=8), r"RunConfig.scale=8: edsr_baseline supports scales \(2, 3, 4\)"),
    (dict(model="drrn", scale=8), r"RunConfig.scale=8: drrn"),
    (dict(lr_mult=0.0), r"RunConfig.lr_mult=0.0"),
    (dict(adam_beta2=1.0), r"RunConfig.adam_beta2=1.0: must be in \(0, 1\)"),
    (dict(weighting="contrasts"), r"RunConfig.weighting='contrasts'"),
    (dict(moments="float16"), r"RunConfig.moments='float16'"),
    (dict(loader="gpu"), r"RunConfig.loader='gpu'"),
    (dict(lr=-1e-4), r"RunConfig.lr=-0.0001"),
    (dict(model="resnet"), r"RunConfig.model='resnet'"),
    (dict(patch=0), r"RunConfig.patch=0"),
    (dict(val_set="Set5", eval_sets=("Set5",)), r"RunConfig.val_set='Set5'.*test sets"),
    (dict(val_set="DIV2K_valid", eval_sets=("Set5",)), r"RunConfig.val_set='DIV2K_valid'"),
    (dict(alpha=0.0, beta=0.0), r"alpha=0 and beta=0"),
    (dict(gamma=-2.0), r"gamma=-2.0"),
])
def test_invalid_values_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        RunConfig(**changes)


def test_unknown_profile_and_field():
    with pytest.raises(ValueError, match="profile='laptop'"):
        profile("laptop")
    with pytest.raises(ValueError, match="unknown field"):
        RunConfig.from_dict({"modle": "vdsr"})
    with pytest.raises(ValueError, match="unknown RunConfig field 'modle'"):
        parse_override("modle=vdsr")


def test_overrides_are_typed_like_the_field():
    assert parse_override("epochs=7") == ("epochs", 7)
    assert parse_override("alpha=0.3") == ("alpha", 0.3)
    assert parse_override("milestones=3,6") == ("milestones", (3, 6))
    assert parse_override("eval_sets=Set5,embedded_valid") == ("eval_sets", ("Set5", "embedded_valid"))
    assert parse_override("amp=on") == ("amp", True)
    assert parse_override("eval_limit=none") == ("eval_limit", None)


def test_learning_rate_halves_at_milestones_and_warms_up():
    c = RunConfig(lr=1e-4, milestones=(200,), lr_decay=0.5)
    assert learning_rate(c, 199, 199.999) == 1e-4 and learning_rate(c, 200, 200.001) == 5e-5
    w = c.replace(warmup_epochs=2.0)
    assert learning_rate(w, 0, 0.5) == pytest.approx(2.5e-5) and learning_rate(w, 3, 3.5) == 1e-4
    assert learning_rate(c.replace(lr_mult=4.0), 200, 200.5) == pytest.approx(2e-4)


def test_arm_labels_name_the_control():
    c = profile("smoke")
    labels = [c.replace(weighting="none").arm, c.replace(weighting="none", warmup_epochs=3.0).arm,
              c.arm, c.replace(weighting="uniform").arm, c.replace(mu=1.0).arm, c.replace(alpha=0.3).arm,
              c.replace(ssim="paper").arm, c.replace(padding="reflect").arm, c.replace(weighting="contrast").arm,
              c.replace(weighting="uniform", alpha=0.3).arm, c.replace(weighting="none", lr_mult=0.5).arm,
              c.replace(lr_mult=4.0).arm, c.replace(weighting="none", adam_beta2=0.99).arm,
              c.replace(moments="float32").arm]
    assert labels == ["l1", "warmup", "pspl", "uniform", "easy_first", "pspl_alpha0.3", "pspl_paper_ssim",
                      "pspl_reflect", "contrast", "uniform_alpha0.3", "l1_lrx0.5", "pspl_lrx4", "l1_beta2_0.99",
                      "pspl_f32moments"]


def test_footnotes_say_when_div2k_is_a_stand_in(tmp_path, monkeypatch):
    from pspl_nb.data.sources import STANDIN_MARKER

    monkeypatch.setenv("PSPL_DATA", str(tmp_path))
    c = profile("rehearse")
    assert "on DIV2K:" in c.describe()
    (tmp_path / "DIV2K_train").mkdir()
    (tmp_path / "DIV2K_train" / STANDIN_MARKER).write_text("{}")
    assert "stand-in (NOT DIV2K" in c.describe() and "on DIV2K:" not in c.describe()


@pytest.mark.parametrize("changes, message", [
    (dict(batch=True), "RunConfig.batch=True: must be a positive integer"),
    (dict(seed="a"), "RunConfig.seed='a': must be an integer >= 0"),
    (dict(seed=-1), "RunConfig.seed=-1: must be an integer >= 0"),
    (dict(epochs=2.5), "RunConfig.epochs=2.5: must be a positive integer"),
    (dict(scale=2.0), "RunConfig.scale=2.0: must be a positive integer"),
    (dict(eval_limit=2.5), "RunConfig.eval_limit=2.5: must be None (every image) or an integer >= 1"),
    (dict(mu=float("nan")), "RunConfig.mu=nan: must be a finite number"),
    (dict(gamma="abc"), "RunConfig.gamma='abc': must be a finite number"),
    (dict(lr=float("inf")), "RunConfig.lr=inf: must be a finite number"),
    (dict(amp="yes"), "RunConfig.amp='yes': must be True or False"),
    (dict(milestones=5), "RunConfig.milestones=5: must be a tuple of epochs (positive integers) at which the lr"),
    (dict(milestones=("abc",)), "RunConfig.milestones=('abc',): must be a tuple of epochs"),
    (dict(attention_steps=(1, -2)), "RunConfig.attention_steps=(1, -2): must be a tuple of ages in epochs"),
    (dict(eval_sets=("Set6",), val_set="Set6"), "RunConfig.eval_sets=('Set6',): must be a tuple of set names"),
    (dict(workers=-1), "RunConfig.workers=-1: must be an integer >= 0"),
    (dict(gamma=-2.0), "RunConfig.gamma=-2.0: gamma=-2.0 must be finite and >= 0"),
])
def test_python_users_get_the_command_lines_one_line_errors(changes, message):
    """Wrong types and values fail where the config is made, naming the field, the value and what is allowed."""
    with pytest.raises(ValueError) as err:
        RunConfig(**changes)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_scale_no_data_set_ships_is_refused_with_the_data_it_needs():
    with pytest.raises(ValueError) as err:
        RunConfig(model="lapsrn", scale=8)
    assert str(err.value).startswith("RunConfig.scale=8: lapsrn can upsample x8, but the kit's data sets ship LR "
                                     "images at x2, x3, x4 only; x8 needs <data>/DIV2K_train/LR_bicubic/X8/")


@pytest.mark.parametrize("text, message", [
    ("amp=maybe", "--set amp=maybe: RunConfig.amp is true or false (also yes/no, on/off, 1/0)"),
    ("epochs=2.5", "--set epochs=2.5: RunConfig.epochs must be an integer, e.g. epochs=300"),
    ("gamma=abc", "--set gamma=abc: RunConfig.gamma must be a number, e.g. gamma=2.0"),
    ("eval_limit=2.5", "--set eval_limit=2.5: RunConfig.eval_limit must be an integer, e.g. eval_limit=10"),
])
def test_overrides_of_the_wrong_type_name_the_field(text, message):
    with pytest.raises(ValueError) as err:
        parse_override(text)
    assert str(err.value) == message
    assert parse_override("amp=off") == ("amp", False) and parse_override("compile=False") == ("compile", False)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "RunConfig.seed=-1: must be an integer >= 0"),
    (["--set", "amp=maybe"], "--set amp=maybe: RunConfig.amp is true or false"),
    (["--set", "milestones=abc"], "RunConfig.milestones=('abc',): must be a tuple of epochs"),
    (["--model", "lapsrn", "--set", "scale=8"], "RunConfig.scale=8: lapsrn can upsample x8"),
])
def test_the_command_line_blames_the_right_setting_before_training(args, message, capsys):
    from pspl_nb.train import main

    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and message in err and "RunConfig.patch" not in err

"""One typed configuration per training run, and the named profiles that fill it.

A run is fully described by its ``RunConfig``: it is saved as JSON beside the run's results, its hash
names the run's folder, and loading the JSON gives an equal object. Profiles (``smoke``, ``cpu``,
``gpu``, ``paper``) are starting points; notebooks and the CLI override a few fields.
"""
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

WEIGHTINGS = ("none", "pspl", "uniform", "contrast")
OPTIMIZERS = ("adam", "sgd")
SGD_MOMENTUM = 0.9
RAMP_STEP = 0.1  # epochs of age per entry of RunConfig.lr_ramp
LOADERS = ("auto", "host", "device")


@dataclass(frozen=True)
class RunConfig:
    # model
    model: str = "edsr_baseline"      # srcnn | vdsr | drrn | lapsrn | edsr_baseline | edsr
    size: str = "full"                # "full" = the published architecture; "small", "tiny" = CPU presets
    scale: int = 2                    # upscaling factor
    channels: str = "rgb"             # "rgb" or "y" (BT.601 luma, as DRRN and LapSRN train)
    rgb_range: float = 255.0          # data on [0, rgb_range]; EDSR-PyTorch (the official code) uses 255
    # data
    dataset: str = "div2k"            # training images: "div2k" or "embedded" (offline)
    patch: int = 48                   # LR patch side in pixels (HR side = patch * scale)
    batch: int = 16                   # patches per iteration (global, split across DDP ranks)
    iters_per_epoch: int = 1000       # EDSR-PyTorch's epoch: 1000 iterations
    epochs: int = 300
    val_set: str = "DIV2K_valid"      # picks the "best" checkpoint; never a test set
    eval_sets: tuple = ("DIV2K_valid",)  # scored after every epoch (PSNR/SSIM on Y, shave = scale; and the
                                      # EDSR-PyTorch metric, RGB with shave = scale + 6, on non-benchmark sets)
    eval_limit: int | None = None     # first N images of each non-test set in eval_sets (None = all)
    test_sets: tuple = ()             # scored once, after the last epoch, always on every image (Table 1)
    # optimiser: Adam(0.9, adam_beta2, eps 1e-8) or SGD with momentum 0.9; lr * lr_mult, multiplied by
    # lr_decay at each milestone epoch
    optimizer: str = "adam"           # adam (the official code) | sgd (momentum 0.9: a loss scale is an lr scale)
    lr: float = 1e-4
    lr_mult: float = 1.0              # the lr-sweep controls: lr * lr_mult (x0.5 ... x8)
    adam_beta2: float = 0.999         # Adam's second-moment decay; 0.99 = a ~100-step memory instead of ~1000
    milestones: tuple = (200,)
    lr_decay: float = 0.5
    warmup_epochs: float = 0.0        # linear lr warm-up over this many epochs (the `warmup` control)
    lr_ramp: tuple = ()               # lr multipliers per tenth of an epoch of age, the last one held after
                                      # (the `l1_lrramp` control: L1 given the step sizes PSPL's scale gives Adam)
    # loss: base(Ma * sr, Ma * hr), see pspl_nb.pspl
    base: str = "l1"                  # l1 | l2 | charbonnier
    weighting: str = "pspl"           # none (plain base loss) | pspl | uniform (batch-mean attention, no
                                      # pixel contrast) | contrast (attention / its batch mean: no global scale)
    gamma: float = 2.0
    mu: float = -1.0                  # -1: hard pixels first (paper); +1: easy first
    alpha: float = 1.0                # delta = alpha * age_in_epochs + beta (official default changed 0.3 -> 1)
    beta: float = 0.0
    ssim: str = "official"            # official: C1, C2 for L = 1 on [0, 255] data; paper: range-matched
    padding: str = "zeros"            # SSIM map borders: zeros (official) or reflect
    moments: str = "float64"          # SSIM moments' dtype; float32 = the official code's rounding
    # bookkeeping
    seed: int = 0
    attention_steps: tuple = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16)  # ages (epochs) at which the attention
                                      # of a fixed validation crop is saved
    # execution. device, amp, channels_last and compile change the arithmetic, so their effect enters the
    # run id through ``numerics()``; workers and loader give bit-identical batches and stay out of it.
    device: str = "auto"              # auto | cpu | cuda | mps
    amp: bool = False                 # bf16 autocast on CUDA (no effect elsewhere)
    tf32: bool = False                # float32 convolutions and products in TF32 on CUDA (10-bit mantissas);
                                      # False: IEEE float32 (no effect off CUDA; the SSIM map is always IEEE)
    channels_last: bool = False
    compile: bool = False             # torch.compile the model
    workers: int = 0                  # DataLoader worker processes (host loader)
    loader: str = "auto"              # host (DataLoader) | device (patches cut on the device) | auto: device
                                      # on CUDA when the training set fits in a third of its free memory

    def __post_init__(self):
        validate(self)

    @property
    def pspl(self) -> bool:
        return self.weighting != "none"

    def schedule(self):
        """PSPL's ``Schedule(gamma, mu, alpha, beta)`` of this run (``pspl_nb.pspl``)."""
        from pspl_nb.pspl import Schedule

        return Schedule(self.gamma, self.mu, self.alpha, self.beta)

    @property
    def arm(self) -> str:
        """Short label of the training objective, used in run ids, legends and tables.

        ``l1`` / ``l2`` (plain), ``warmup`` (plain with lr warm-up), ``pspl``, ``easy_first`` (PSPL with
        mu = +1), ``uniform`` and ``contrast`` (the two halves of PSPL, see ``pspl.PSPLLoss``), each suffixed
        by what differs from the defaults: ``_alpha0.3``, ``_beta0.5``, ``_paper_ssim``, ``_reflect``,
        ``_f32moments`` (the attention's settings), ``_lrramp``, ``_lrx2``, ``_beta2_0.99`` and ``_sgd`` (the
        optimiser's), e.g. ``uniform_alpha0.3``, ``l1_lrx0.5`` or ``pspl_sgd``.
        """
        if self.weighting == "none":
            name = "warmup" if self.warmup_epochs else self.base
            if self.lr_ramp:
                name += "_lrramp"
        else:
            name = {"pspl": "easy_first" if self.mu > 0 else "pspl"}.get(self.weighting, self.weighting)
            if self.mu != -1.0 and not (self.weighting == "pspl" and self.mu == 1.0):
                name += f"_mu{self.mu:g}"
            if self.alpha != 1.0 or self.beta != 0.0:
                name += f"_alpha{self.alpha:g}" + (f"_beta{self.beta:g}" if self.beta else "")
            if self.ssim == "paper":
                name += "_paper_ssim"
            if self.padding == "reflect":
                name += "_reflect"
            if self.moments == "float32":
                name += "_f32moments"
        if self.lr_mult != 1.0:
            name += f"_lrx{self.lr_mult:g}"
        if self.adam_beta2 != 0.999:
            name += f"_beta2_{self.adam_beta2:g}"
        if self.optimizer != "adam":
            name += f"_{self.optimizer}"
        return name

    def numerics(self) -> str:
        """What the machine does to the arithmetic, e.g. ``cpu``, ``cuda``, ``cuda-bf16-cl``, ``cuda-tf32-ddp4``.

        The device type the run resolves to (``device="auto"`` follows the machine), then ``bf16`` when
        autocast takes effect (CUDA only), ``tf32`` when TF32 does (CUDA only), ``cl`` for channels_last,
        ``compile``, and ``ddp<N>`` when N > 1 processes train it (torchrun's ``WORLD_SIZE``: the gradient is
        summed across ranks in another order). Each can change the numbers a run produces, so each is part
        of the run's identity; a flag that takes no effect adds nothing.
        """
        kind = resolve_device(self.device).type
        flags = [kind] + ["bf16"] * (self.amp and kind == "cuda") + ["tf32"] * (self.tf32 and kind == "cuda")
        flags += ["cl"] * self.channels_last + ["compile"] * self.compile
        world = world_size()
        return "-".join(flags + [f"ddp{world}"] * (world > 1))

    def describe(self) -> str:
        """One line for figure footnotes: the data, model size, schedule and loss that made a result."""
        return describe_grid([self])

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_id(self) -> str:
        """``<model>-<size>-x<scale>-<arm>-s<seed>-<hash>``; the hash covers every field that changes results
        and ``numerics()``, so an fp32 and a bf16 run (or a CPU and a CUDA run) never share a folder."""
        science = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        science["numerics"] = self.numerics()
        digest = hashlib.sha256(json.dumps(science, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.model}-{self.size}-x{self.scale}-{self.arm}-s{self.seed}-{digest}"

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "RunConfig":
        """The RunConfig saved at ``path``; ValueError (one line naming the file) when the file is not one."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path} is not a valid RunConfig ({type(e).__name__}: {e}); restore it with "
                             f"config.save(path) from the RunConfig whose run_id() is {Path(path).parent.name}, "
                             "or retrain that config with force=True") from None

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"RunConfig: unknown field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


EXECUTION_FIELDS = ("device", "amp", "tf32", "channels_last", "compile", "workers", "loader")


def world_size() -> int:
    """How many DDP processes train a run: torchrun's ``WORLD_SIZE``, 1 outside torchrun."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(name: str = "auto"):
    """``"auto"`` -> cuda if available, else mps, else cpu; other names as given. Returns a torch.device."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    return torch.device(name)


def _loss(c: RunConfig) -> str:
    optim = (f", lr x{c.lr_mult:g}" if c.lr_mult != 1 else "") + (f", Adam beta2 {c.adam_beta2:g}"
                                                                  if c.adam_beta2 != 0.999 else "")
    optim += (f", SGD momentum {SGD_MOMENTUM:g} at lr {c.lr:g}" if c.optimizer == "sgd" else "")
    optim += (f", lr ramped over {len(c.lr_ramp) * RAMP_STEP:g} epochs (x{min(c.lr_ramp):.2g}-x{max(c.lr_ramp):.2g})"
              if c.lr_ramp else "")
    if c.weighting == "none":
        return c.base.upper() + (f" with a {c.warmup_epochs:g}-epoch lr warm-up" if c.warmup_epochs else "") + optim
    return (f"{c.weighting.upper()} on {c.base.upper()} (SSIM {c.ssim}, {c.moments} moments, gamma {c.gamma:g}, "
            f"mu {c.mu:g}, alpha {c.alpha:g}, beta {c.beta:g}{optim})")


def on_standin(c: RunConfig, root=None) -> bool:
    """Whether a DIV2K run of ``c`` would train on the synthetic stand-in (``make rehearse``) in the data root."""
    from pspl_nb.data import is_standin

    return c.dataset == "div2k" and is_standin("DIV2K_train", root)


def describe_grid(configs) -> str:
    """Footnote for a figure made from several runs: what they share, then each arm's loss and the seeds."""
    c = configs[0]
    data = "DIV2K" if c.dataset == "div2k" else "the embedded scikit-image images (offline stand-in)"
    if on_standin(c):
        data = "a synthetic DIV2K-shaped stand-in (NOT DIV2K: make rehearse)"
    models = ", ".join(dict.fromkeys(f"{k.model} ({k.size})" for k in configs))
    arms = "; ".join(dict.fromkeys(f"{k.arm}: {_loss(k)}" for k in configs))
    seeds = sorted({k.seed for k in configs})
    paper = PROFILES["paper"]
    same = all(getattr(c, k) == paper[k] for k in ("dataset", "size", "epochs", "iters_per_epoch", "batch", "patch"))
    numerics = ", ".join(sorted({k.numerics() for k in configs}))
    return (f"{models} x{c.scale} {c.channels.upper()} on {data}: {c.epochs} epochs x {c.iters_per_epoch} it x "
            f"batch {c.batch}, LR patch {c.patch}, lr {c.lr:g} x{c.lr_decay:g} at {list(c.milestones)}; {arms}; "
            f"seeds {seeds}; numerics {numerics}. " + ("The paper's schedule." if same else
                                   "Not the paper's setting (DIV2K, full models, 300 x 1000 it x batch 16)."))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(c: RunConfig) -> None:
    """Raise ValueError with one line, ``RunConfig.<field>=<value>: <what is allowed>``, naming the first
    invalid field of ``c``: its type first, then its range, then how fields must agree."""
    from pspl_nb.data.sources import DATASET_KEYS, SCALES, SET_NAMES
    from pspl_nb.models import MODEL_CARDS, MODELS, SIZES
    from pspl_nb.pspl import BASES, SSIM_MODES
    from pspl_nb.ssim import MOMENTS

    def bad(name, why):
        raise ValueError(f"RunConfig.{name}={getattr(c, name)!r}: {why}")

    # types: what a field holds must be what the code that reads it expects
    for name in ("scale", "patch", "batch", "iters_per_epoch", "epochs"):
        if not (_is_int(getattr(c, name)) and getattr(c, name) > 0):
            bad(name, "must be a positive integer")
    for name in ("seed", "workers"):
        if not (_is_int(getattr(c, name)) and getattr(c, name) >= 0):
            bad(name, "must be an integer >= 0")
    if c.eval_limit is not None and not (_is_int(c.eval_limit) and c.eval_limit >= 1):
        bad("eval_limit", "must be None (every image) or an integer >= 1")
    for name in ("rgb_range", "lr", "lr_mult", "adam_beta2", "lr_decay", "warmup_epochs", "gamma", "mu", "alpha",
                 "beta"):
        if not _is_number(getattr(c, name)):
            bad(name, "must be a finite number")
    for name in ("amp", "channels_last", "compile"):
        if not isinstance(getattr(c, name), bool):
            bad(name, "must be True or False")
    if not (isinstance(c.milestones, tuple) and all(_is_int(m) and m > 0 for m in c.milestones)):
        bad("milestones", "must be a tuple of epochs (positive integers) at which the lr decays, e.g. (200,)")
    if not (isinstance(c.attention_steps, tuple) and all(_is_number(a) and a >= 0 for a in c.attention_steps)):
        bad("attention_steps", "must be a tuple of ages in epochs (numbers >= 0), e.g. (0.5, 1, 2)")
    for name in ("eval_sets", "test_sets"):
        sets = getattr(c, name)
        if not (isinstance(sets, tuple) and all(s in SET_NAMES for s in sets)):
            bad(name, f"must be a tuple of set names from {SET_NAMES}")
    # values
    choices = {"model": tuple(MODELS), "size": SIZES, "channels": ("rgb", "y"),
               "dataset": tuple(DATASET_KEYS), "base": BASES, "weighting": WEIGHTINGS, "ssim": SSIM_MODES,
               "padding": ("zeros", "reflect"), "moments": MOMENTS, "device": ("auto", "cpu", "cuda", "mps"),
               "loader": LOADERS, "optimizer": OPTIMIZERS}
    for name, allowed in choices.items():
        if getattr(c, name) not in allowed:
            bad(name, f"expected one of {allowed}")
    scales = MODEL_CARDS[c.model].scales
    if c.scale not in scales:
        why = " (LapSRN upsamples in x2 levels)" if c.model == "lapsrn" else ""
        bad("scale", f"{c.model} supports scales {scales}{why}")
    if c.scale not in SCALES:
        train_set = DATASET_KEYS[c.dataset][0]
        bad("scale", f"{c.model} can upsample x{c.scale}, but the kit's data sets ship LR images at x"
                     f"{', x'.join(map(str, SCALES))} only; x{c.scale} needs <data>/{train_set}/LR_bicubic/X{c.scale}/"
                     f"<stem>x{c.scale}.png (MATLAB bicubic of each HR image, pspl_nb.resize.imresize_uint8) for "
                     f"training and the same for every evaluation set")
    for name in ("lr", "lr_mult", "rgb_range"):
        if not getattr(c, name) > 0:
            bad(name, "must be > 0")
    if not 0 < c.adam_beta2 < 1:
        bad("adam_beta2", "must be in (0, 1)")
    if not 0 < c.lr_decay <= 1:
        bad("lr_decay", "must be in (0, 1]")
    if c.warmup_epochs < 0:
        bad("warmup_epochs", "must be >= 0")
    if not isinstance(c.lr_ramp, tuple) or not all(_is_number(m) and m >= 0 for m in c.lr_ramp):
        bad("lr_ramp", "must be a tuple of lr multipliers >= 0, one per tenth of an epoch")
    if not c.eval_sets:
        bad("eval_sets", "must name at least one set (val_set among them)")
    if c.val_set not in c.eval_sets:
        bad("val_set", f"must be one of eval_sets {c.eval_sets}")
    if c.val_set in TEST_SETS:
        bad("val_set", f"{TEST_SETS} are test sets; selecting the best epoch on them leaks the test")
    try:
        c.schedule()  # PSPL's own rules for its schedule
    except ValueError as e:
        bad(next((f for f in ("gamma", "alpha", "beta") if f"{f}=" in str(e)), "alpha"), str(e).removeprefix("PSPL: "))


TEST_SETS = ("Set5", "Set14", "B100", "Urban100")

# Named starting points. Times are measured on the 2-core CPU the kit is developed on (README).
_EMBEDDED = dict(dataset="embedded", size="tiny", val_set="embedded_valid", eval_sets=("embedded_valid", "embedded_tune"))
_DIV2K = dict(dataset="div2k", size="full", patch=48, batch=16, iters_per_epoch=1000, val_set="DIV2K_valid",
              eval_sets=("DIV2K_valid",), workers=4)
PROFILES = {
    # CI: seconds per run, only proves the machinery works
    "smoke": dict(_EMBEDDED, patch=16, batch=4, iters_per_epoch=12, epochs=3, milestones=(2,), lr=5e-4,
                  eval_limit=2, attention_steps=(0.25, 1, 2)),
    # make reproduce: small models on the embedded images, long enough for curves to separate (or not).
    # An epoch is 40 iterations, so PSPL's weights flatten (within 10%, alpha 1) by iteration ~220: 47% of
    # the run and shorter than Adam's ~1000-step second-moment memory, unlike the paper (2% of the run).
    "cpu": dict(_EMBEDDED, patch=24, batch=16, iters_per_epoch=40, epochs=12, milestones=(9,), lr=5e-4,
                attention_steps=(0.1, 0.25, 0.5, 1, 2, 4, 8)),
    # a stronger regime: the cpu profile's model and patches trained 4x longer (2,000 iterations of 100 per
    # epoch), so L1 ends further above bicubic; PSPL's weights flatten (within 10%) after ~560 iterations,
    # 28% of the run (the paper: 2%), about half of Adam's ~1000-step second-moment memory
    "cpu_long": dict(_EMBEDDED, patch=24, batch=16, iters_per_epoch=100, epochs=20, milestones=(15,), lr=5e-4,
                     attention_steps=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16)),
    # one GPU, DIV2K, published architectures, EDSR-PyTorch epochs, half the paper's schedule, bf16
    "gpu": dict(_DIV2K, epochs=150, milestones=(100,), amp=True, channels_last=True),
    # exactly the official settings (docs/official_code.md#training-schedule): 300 epochs, lr halved at 200,
    # in IEEE float32: the paper's runs (2019) predate TF32, which came with the A100 in 2020
    "paper": dict(_DIV2K, epochs=300, milestones=(200,), lr=1e-4, tf32=False),
    # make rehearse: the gpu profile's code path (DIV2K layout and loader, every evaluation set, bf16 on
    # CUDA, loader workers) on a schedule of minutes; tiny models on a CPU, the full ones on CUDA
    "rehearse": dict(_DIV2K, size="tiny", patch=24, batch=4, iters_per_epoch=4, epochs=2, milestones=(1,),
                     amp=True, channels_last=True, workers=2, lr=5e-4, attention_steps=(0.5, 1)),
}
# what `rehearse` changes on a CUDA machine: the published architectures and more iterations
REHEARSE_CUDA = dict(size="full", batch=16, patch=48, iters_per_epoch=100)


# seeds per arm that notebooks train for each profile (the committed reference grid has 8: README)
SEEDS = {"smoke": (0, 1), "cpu": (0, 1, 2), "cpu_long": (0, 1, 2), "gpu": (0, 1, 2), "paper": (0, 1),
         "rehearse": (0,)}


def profile(name: str, **overrides) -> RunConfig:
    """The ``RunConfig`` of profile ``name`` with ``overrides`` applied (field=value)."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r}: expected one of {tuple(PROFILES)}")
    fields = dict(PROFILES[name])
    if name == "rehearse" and resolve_device(overrides.get("device", "auto")).type == "cuda":
        fields.update(REHEARSE_CUDA)
    return RunConfig(**{**fields, **overrides})


# Wall time of `make reproduce PROFILE=<name>` (all notebooks). smoke/cpu: measured on the 2-core development
# CPU; gpu/paper: estimated from a measured 1000-iteration EDSR-baseline x2 epoch on one H100 (12-20 s with
# evaluation, bench/gpu_results) times the notebooks' ~40 runs, before the larger x4 models.
EXPECTED_TIME = {"smoke": "~2 min (2-core CPU)", "cpu": "~25 min (2-core CPU)", "cpu_long": "~3 h (2-core CPU, estimate)",
                 "gpu": "~1-2 days (one H100)", "paper": "~1 week (one H100)", "rehearse": "~4 min (2-core CPU)"}


def profiles_table():
    """The profiles side by side (one column each), for README and notebook 00."""
    import pandas as pd

    keys = ("dataset", "size", "patch", "batch", "iters_per_epoch", "epochs", "milestones", "lr", "eval_sets",
            "eval_limit", "amp")
    table = pd.DataFrame({name: {k: getattr(profile(name), k) for k in keys} for name in PROFILES})
    table.loc["seeds per arm"] = [len(SEEDS[n]) for n in PROFILES]
    table.loc["make reproduce"] = [EXPECTED_TIME[n] for n in PROFILES]
    return table

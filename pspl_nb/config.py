"""One typed configuration per training run, and the named profiles that fill it.

A run is fully described by its ``RunConfig``: it is saved as JSON beside the run's results, its hash
names the run's folder, and loading the JSON gives an equal object. Profiles (``smoke``, ``cpu``,
``gpu``, ``paper``) are starting points; notebooks and the CLI override a few fields.
"""
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

WEIGHTINGS = ("none", "pspl", "uniform")


@dataclass(frozen=True)
class RunConfig:
    # model
    model: str = "edsr_baseline"      # srcnn | vdsr | drrn | lapsrn | edsr_baseline | edsr
    size: str = "full"                # "full" = the published architecture, "tiny" = 2-core CPU preset
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
    eval_sets: tuple = ("DIV2K_valid",)  # scored after every epoch (PSNR/SSIM on Y, shave = scale)
    eval_limit: int | None = None     # first N images of each evaluation set (None = all)
    # optimiser: Adam(0.9, 0.999, eps 1e-8), lr multiplied by lr_decay at each milestone epoch
    lr: float = 1e-4
    milestones: tuple = (200,)
    lr_decay: float = 0.5
    warmup_epochs: float = 0.0        # linear lr warm-up over this many epochs (the `warmup` control)
    # loss: base(Ma * sr, Ma * hr), see pspl_nb.pspl
    base: str = "l1"                  # l1 | l2 | charbonnier
    weighting: str = "pspl"           # none (plain base loss) | pspl | uniform (batch-mean attention)
    gamma: float = 2.0
    mu: float = -1.0                  # -1: hard pixels first (paper); +1: easy first
    alpha: float = 1.0                # delta = alpha * age_in_epochs + beta (official default changed 0.3 -> 1)
    beta: float = 0.0
    ssim: str = "official"            # official: C1, C2 for L = 1 on [0, 255] data; paper: range-matched
    padding: str = "zeros"            # SSIM map borders: zeros (official) or reflect
    # bookkeeping
    seed: int = 0
    attention_steps: tuple = (0.1, 0.25, 0.5, 1, 2, 4, 8, 16)  # ages (epochs) at which the attention
                                      # of a fixed validation crop is saved
    # execution (does not change what is computed on CPU, so it is left out of the run id)
    device: str = "auto"              # auto | cpu | cuda | mps
    amp: bool = False                 # bf16 autocast on CUDA
    channels_last: bool = False
    compile: bool = False             # torch.compile the model
    workers: int = 0                  # DataLoader worker processes

    def __post_init__(self):
        validate(self)

    @property
    def pspl(self) -> bool:
        return self.weighting != "none"

    @property
    def arm(self) -> str:
        """Short label of the training objective, used in run ids, legends and tables.

        ``l1`` / ``l2`` (plain), ``warmup`` (plain with lr warm-up), ``uniform``, ``pspl``, ``easy_first``
        (PSPL with mu = +1), and PSPL variants suffixed by what differs from the defaults, e.g.
        ``pspl_alpha0.3``, ``pspl_paper_ssim``, ``pspl_reflect``.
        """
        if self.weighting == "none":
            return "warmup" if self.warmup_epochs else self.base
        if self.weighting == "uniform":
            return "uniform"
        name = "easy_first" if self.mu > 0 else "pspl"
        if self.alpha != 1.0 or self.beta != 0.0:
            name += f"_alpha{self.alpha:g}" + (f"_beta{self.beta:g}" if self.beta else "")
        if self.ssim == "paper":
            name += "_paper_ssim"
        if self.padding == "reflect":
            name += "_reflect"
        return name

    def describe(self) -> str:
        """One line for figure footnotes: the data, model size, schedule and loss that made a result."""
        return describe_grid([self])

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_id(self) -> str:
        """``<model>-<size>-x<scale>-<arm>-s<seed>-<hash>``; the hash covers every field that changes results."""
        science = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        digest = hashlib.sha256(json.dumps(science, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.model}-{self.size}-x{self.scale}-{self.arm}-s{self.seed}-{digest}"

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "RunConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"RunConfig: unknown field(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


EXECUTION_FIELDS = ("device", "amp", "channels_last", "compile", "workers")


def _loss(c: RunConfig) -> str:
    if c.weighting == "none":
        return c.base.upper() + (f" with a {c.warmup_epochs:g}-epoch lr warm-up" if c.warmup_epochs else "")
    return (f"{c.weighting.upper()} on {c.base.upper()} (SSIM {c.ssim}, gamma {c.gamma:g}, mu {c.mu:g}, "
            f"alpha {c.alpha:g}, beta {c.beta:g})")


def describe_grid(configs) -> str:
    """Footnote for a figure made from several runs: what they share, then each arm's loss and the seeds."""
    c = configs[0]
    data = "DIV2K" if c.dataset == "div2k" else "the embedded scikit-image images (offline stand-in)"
    models = ", ".join(dict.fromkeys(f"{k.model} ({k.size})" for k in configs))
    arms = "; ".join(dict.fromkeys(f"{k.arm}: {_loss(k)}" for k in configs))
    seeds = sorted({k.seed for k in configs})
    paper = PROFILES["paper"]
    same = all(getattr(c, k) == paper[k] for k in ("dataset", "size", "epochs", "iters_per_epoch", "batch", "patch"))
    return (f"{models} x{c.scale} {c.channels.upper()} on {data}: {c.epochs} epochs x {c.iters_per_epoch} it x "
            f"batch {c.batch}, LR patch {c.patch}, lr {c.lr:g} x{c.lr_decay:g} at {list(c.milestones)}; {arms}; "
            f"seeds {seeds}. " + ("The paper's schedule." if same else
                                   "Not the paper's setting (DIV2K, full models, 300 x 1000 it x batch 16)."))


def validate(c: RunConfig) -> None:
    """Raise ValueError with one line naming the first invalid field of ``c``."""
    from pspl_nb.models import MODELS
    from pspl_nb.pspl import BASES, SSIM_MODES, check_schedule

    def bad(name, why):
        raise ValueError(f"RunConfig.{name}={getattr(c, name)!r}: {why}")

    choices = {"model": tuple(MODELS), "size": ("full", "tiny"), "channels": ("rgb", "y"),
               "dataset": ("div2k", "embedded"), "base": BASES, "weighting": WEIGHTINGS, "ssim": SSIM_MODES,
               "padding": ("zeros", "reflect"), "device": ("auto", "cpu", "cuda", "mps")}
    for name, allowed in choices.items():
        if getattr(c, name) not in allowed:
            bad(name, f"expected one of {allowed}")
    if c.scale not in (2, 3, 4, 8):
        bad("scale", "expected 2, 3, 4 or 8")
    if c.model == "lapsrn" and c.scale not in (2, 4, 8):
        bad("scale", "LapSRN upsamples in x2 levels: 2, 4 or 8")
    for name in ("patch", "batch", "iters_per_epoch", "epochs"):
        if not (isinstance(getattr(c, name), int) and getattr(c, name) > 0):
            bad(name, "must be a positive integer")
    for name in ("lr", "rgb_range"):
        if not getattr(c, name) > 0:
            bad(name, "must be > 0")
    if not 0 < c.lr_decay <= 1:
        bad("lr_decay", "must be in (0, 1]")
    if c.warmup_epochs < 0:
        bad("warmup_epochs", "must be >= 0")
    if c.eval_limit is not None and c.eval_limit < 1:
        bad("eval_limit", "must be None or >= 1")
    if c.val_set not in c.eval_sets:
        bad("val_set", f"must be one of eval_sets {c.eval_sets}")
    if c.val_set in TEST_SETS:
        bad("val_set", f"{TEST_SETS} are test sets; selecting the best epoch on them leaks the test")
    if c.workers < 0:
        bad("workers", "must be >= 0")
    try:
        check_schedule(c.gamma, c.alpha, c.beta)
    except ValueError as e:
        raise ValueError(f"RunConfig: {e}") from None


TEST_SETS = ("Set5", "Set14", "B100", "Urban100")

# Named starting points. Times are measured on the 2-core CPU the kit is developed on (README).
PROFILES = {
    # CI: seconds per run, only proves the machinery works
    "smoke": dict(dataset="embedded", size="tiny", patch=16, batch=4, iters_per_epoch=12, epochs=3,
                  milestones=(2,), lr=5e-4, val_set="embedded_valid", eval_sets=("embedded_valid",),
                  eval_limit=2, attention_steps=(0.25, 1, 2)),
    # make reproduce: small models on the embedded images, long enough for curves to separate (or not)
    "cpu": dict(dataset="embedded", size="tiny", patch=24, batch=16, iters_per_epoch=40, epochs=12,
                milestones=(9,), lr=5e-4, val_set="embedded_valid", eval_sets=("embedded_valid",),
                attention_steps=(0.1, 0.25, 0.5, 1, 2, 4, 8)),
    # one GPU, DIV2K, published architectures, EDSR-PyTorch epochs, half the paper's schedule
    "gpu": dict(dataset="div2k", size="full", patch=48, batch=16, iters_per_epoch=1000, epochs=150,
                milestones=(100,), val_set="DIV2K_valid", eval_sets=("DIV2K_valid",), eval_limit=10,
                amp=True, channels_last=True, workers=4),
    # exactly the official settings (REFERENCE section 5): 300 epochs, lr halved at 200
    "paper": dict(dataset="div2k", size="full", patch=48, batch=16, iters_per_epoch=1000, epochs=300,
                  milestones=(200,), lr=1e-4, val_set="DIV2K_valid", eval_sets=("DIV2K_valid",), workers=4),
}


# seeds per arm that notebooks train for each profile
SEEDS = {"smoke": (0, 1), "cpu": (0, 1, 2), "gpu": (0, 1, 2), "paper": (0, 1)}


def profile(name: str, **overrides) -> RunConfig:
    """The ``RunConfig`` of profile ``name`` with ``overrides`` applied (field=value)."""
    if name not in PROFILES:
        raise ValueError(f"profile={name!r}: expected one of {tuple(PROFILES)}")
    return RunConfig(**{**PROFILES[name], **overrides})


# Wall time of `make reproduce PROFILE=<name>` (all notebooks). smoke/cpu: measured on the 2-core development
# CPU; gpu/paper: estimated from a measured 1000-iteration EDSR-baseline x2 epoch on one H100 (12-20 s with
# evaluation, bench/gpu_results) times the notebooks' ~40 runs, before the larger x4 models.
EXPECTED_TIME = {"smoke": "~2 min (2-core CPU)", "cpu": "~29 min (2-core CPU)",
                 "gpu": "~1-2 days (one H100)", "paper": "~1 week (one H100)"}


def profiles_table():
    """The profiles side by side (one column each), for README and notebook 00."""
    import pandas as pd

    keys = ("dataset", "size", "patch", "batch", "iters_per_epoch", "epochs", "milestones", "lr", "eval_sets",
            "eval_limit", "amp")
    table = pd.DataFrame({name: {k: getattr(profile(name), k) for k in keys} for name in PROFILES})
    table.loc["seeds per arm"] = [len(SEEDS[n]) for n in PROFILES]
    table.loc["make reproduce"] = [EXPECTED_TIME[n] for n in PROFILES]
    return table

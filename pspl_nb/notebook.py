"""What the first cell of every notebook needs: the profile's folders, device, seeds and save helpers."""
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from pspl_nb import plots
from pspl_nb.config import SEEDS, RunConfig, on_standin, profile, resolve_device
from pspl_nb.places import data_root, results_root
from pspl_nb.run_folder import code_version


@dataclass
class Session:
    """One notebook's context. Figures go to ``results/<profile>/figures``, tables to ``.../tables``."""

    profile: str
    folder: Path
    device: torch.device
    seeds: tuple
    jobs: int  # parallel training processes for run_grid

    @property
    def figures(self) -> Path:
        return self.folder / "figures"

    @property
    def tables(self) -> Path:
        return self.folder / "tables"

    def config(self, **overrides) -> RunConfig:
        """The profile's RunConfig with ``overrides``."""
        return profile(self.profile, **overrides)

    def show(self, fig, name: str) -> None:
        """Display ``fig`` and save it as ``figures/<name>.png``."""
        plots.show(fig, name, self.figures)

    def save_table(self, df: pd.DataFrame, name: str) -> pd.DataFrame:
        """Write ``tables/<name>.csv`` and return ``df`` for display."""
        self.tables.mkdir(parents=True, exist_ok=True)
        df.to_csv(self.tables / f"{name}.csv", index=not isinstance(df.index, pd.RangeIndex))
        return df


def start(profile_name: str) -> Session:
    """Set up a notebook for ``profile_name`` (smoke, cpu, gpu, paper) and print where things are."""
    c = profile(profile_name)
    device = resolve_device(c.device)
    jobs = 1 if device.type != "cpu" else max(1, min(2, os.cpu_count() or 1))
    s = Session(profile_name, results_root() / profile_name, device, SEEDS[profile_name], jobs)
    torch.manual_seed(0)
    print(f"profile {profile_name} | device {device} | torch {torch.__version__} | python {platform.python_version()}"
          f" | kit {code_version()}\ndata: {data_root()}\nresults: {s.folder} (runs in {results_root() / 'runs'})")
    if on_standin(c):
        print("data is a synthetic DIV2K-shaped STAND-IN (make rehearse): its numbers say nothing about the paper")
    return s

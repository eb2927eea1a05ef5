"""Get, check or fake the kit's data: fetch, verify, standin (--root DIR, default $PSPL_DATA or <repo>/data).

    python -m pspl_nb.data fetch div2k|benchmarks|embedded|all [--force]   download (or build) into the layout
    python -m pspl_nb.data verify [NAME ...]                              decode and count what is on disk
    python -m pspl_nb.data standin [--train N --valid M --bench-count K]  synthetic DIV2K-shaped sets, offline

``fetch`` also accepts "benchmarks_edsr" (EDSR's benchmark.tar instead of the Hugging Face tarballs),
"weights", a set Name ("Set5", "DIV2K_valid", ...) or a single source key (see ``pspl_nb.data.SOURCES``);
``--force`` fetches again what is in place (the repair for a damaged image). ``verify`` prints one line per
set. Exit status 1, with a one-line message, when a download, an archive check, the disk space or a
verification fails.
"""
import argparse
import sys
import time

from .datasets import verify
from .download import DownloadError, UnsafeArchiveError, fetch
from .sources import GROUPS, SOURCES, resolve_root
from .standin import build_standin


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pspl_nb.data", description=__doc__.split("\n")[0])
    root_help = "data root (default: $PSPL_DATA or <repo>/data)"
    parser.add_argument("--root", default=None, help=root_help)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="download (or build, for embedded) and normalise into the layout")
    cmd.add_argument("names", nargs="+", metavar="NAME",
                     help="div2k, benchmarks, benchmarks_edsr, weights, embedded, all, a set Name or a source key")
    cmd.add_argument("--force", action="store_true", help="fetch again even what is already in place")
    cmd = sub.add_parser("verify", help="check that every image decodes, LR sizes and image counts")
    cmd.add_argument("names", nargs="*", metavar="NAME",
                     help="set Names, div2k, benchmarks, embedded (default: every set on disk)")
    cmd = sub.add_parser("standin", help="write synthetic DIV2K-shaped sets (NOT DIV2K) to rehearse offline")
    cmd.add_argument("--train", type=int, default=800, help="DIV2K_train images, 0001.png on (default 800)")
    cmd.add_argument("--valid", type=int, default=100, help="DIV2K_valid images, 0801.png on (default 100)")
    cmd.add_argument("--bench-count", type=int, default=None, help="first K images of each benchmark (default all)")
    cmd.add_argument("--no-benchmarks", action="store_true", help="write DIV2K_train and DIV2K_valid only")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--force", action="store_true", help="rebuild sets whose recipe already matches")
    for cmd in sub.choices.values():  # --root also after the command, as in `fetch div2k --root DIR`
        cmd.add_argument("--root", default=argparse.SUPPRESS, help=root_help)
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            checks = verify(args.names, args.root)
            for check in checks:
                print(check.line)
            if not checks:
                print(f"no set in {resolve_root(args.root)}")
            return 0 if checks and all(c.ok for c in checks) else 1
        if args.command == "standin":
            start = time.monotonic()
            root = build_standin(args.root, args.train, args.valid, not args.no_benchmarks, args.bench_count,
                                 args.seed, args.force)
            print(f"stand-in (synthetic, not DIV2K) in {root} after {time.monotonic() - start:.0f} s; "
                  f"use it with PSPL_DATA={root}")
            return 0
        for name in args.names:
            if name not in GROUPS and name not in SOURCES and name != "embedded":
                parser.error(f"unknown name {name!r}; groups: {', '.join(sorted(GROUPS))}, embedded")
        for name in args.names:
            print(f"{name}: {fetch(name, args.root, args.force)}")
    except (DownloadError, UnsafeArchiveError, ValueError, OSError) as err:  # OSError: disk space, damaged files
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"data root: {resolve_root(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

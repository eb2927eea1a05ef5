"""``python -m pspl_nb.data fetch div2k|benchmarks|embedded|all [--root DIR]``: get data into the layout.

Also accepted: "benchmarks_edsr" (EDSR's benchmark.tar instead of the Hugging Face tarballs), "weights",
a set Name ("Set5", "DIV2K_valid", ...) or a single source key (see ``pspl_nb.data.SOURCES``).
Exit status 1 with a one-line message when a download or an archive check fails.
"""
import argparse
import sys

from .download import DownloadError, UnsafeArchiveError, fetch
from .sources import GROUPS, SOURCES, resolve_root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pspl_nb.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("fetch", help="download (or build, for embedded) and normalise into the layout")
    cmd.add_argument("names", nargs="+", metavar="NAME",
                     help="div2k, benchmarks, benchmarks_edsr, weights, embedded, all, a set Name or a source key")
    cmd.add_argument("--root", default=None, help="data root (default: $PSPL_DATA or <repo>/data)")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in GROUPS and name not in SOURCES and name != "embedded":
            parser.error(f"unknown name {name!r}; groups: {', '.join(sorted(GROUPS))}, embedded")
    try:
        for name in args.names:
            print(f"{name}: {fetch(name, args.root)}")
    except (DownloadError, UnsafeArchiveError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"data root: {resolve_root(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

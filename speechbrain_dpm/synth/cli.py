"""Command line: ``python -m speechbrain_dpm.synth {iemocap,meld} --out DIR``.

The options that say what to generate fill an :class:`IemocapConfig` or a
:class:`MeldConfig`; an option left out takes the config's default, so the
defaults live in one place.

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
from dataclasses import fields

from speechbrain_dpm.synth.config import IemocapConfig, MeldConfig
from speechbrain_dpm.synth.iemocap import generate_iemocap
from speechbrain_dpm.synth.meld import generate_meld

#: Subcommand → (config class, generator).
CORPORA = {
    "iemocap": (IemocapConfig, generate_iemocap),
    "meld": (MeldConfig, generate_meld),
}


def _ints(text):
    """``8,16`` → (8, 16)."""
    return tuple(int(v) for v in text.split(","))


def _pair(text):
    """``8,16`` → (8, 16); anything but two numbers is an error."""
    lo, hi = _ints(text)
    return lo, hi


def build_parser():
    """The argument parser of both subcommands.

    Options that fill the config default to ``argparse.SUPPRESS``: left
    out, they are absent from the parsed arguments and the config's own
    default applies.

    Returns
    -------
    argparse.ArgumentParser
        The parser.

    Example
    -------
    >>> args = build_parser().parse_args(["meld", "--out", "m", "--seed", "3"])
    >>> args.corpus, args.seed, "stickiness" in vars(args)
    ('meld', 3, False)
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_dpm.synth",
        description="Synthetic IEMOCAP / MELD corpora (espeak-ng speech).",
    )
    sub = parser.add_subparsers(dest="corpus", required=True)
    for name in CORPORA:
        p = sub.add_parser(
            name,
            help=f"{name.upper()} layout",
            argument_default=argparse.SUPPRESS,
        )
        p.add_argument("--out", required=True, help="corpus root")
        p.add_argument("--jobs", type=int, default=2, help="worker processes")
        p.add_argument("--overwrite", action="store_true", default=False)
        p.add_argument("--seed", type=int)
        p.add_argument(
            "--long", dest="long_dialogues", type=int, help="long dialogues"
        )
        p.add_argument("--long-turns", type=int)
        p.add_argument("--stickiness", type=float)
        p.add_argument("--turns", type=_pair, help="min,max turns")
        p.add_argument("--intensity", type=float)
        p.add_argument("--jitter", type=float)
        p.add_argument("--laden-share", type=float)
        p.add_argument(
            "--subdued-share",
            type=float,
            help="share of flat-sounding turns that keep their label",
        )
        p.add_argument("--text-csv", help="CSV with MELD's columns")
        p.add_argument("--csv-labels", action="store_true")
    sub.choices["iemocap"].add_argument(
        "--dialogues", dest="n_dialogues", type=int
    )
    sub.choices["iemocap"].add_argument(
        "--long-session", type=int, help="session of all long dialogues"
    )
    sub.choices["meld"].add_argument(
        "--dialogues",
        dest="n_dialogues",
        type=_ints,
        help="train,dev,test dialogue counts",
    )
    sub.choices["meld"].add_argument("--video", action="store_true")
    return parser


def config_from_args(args):
    """The corpus config that parsed arguments ask for.

    Arguments
    ---------
    args : argparse.Namespace
        From :func:`build_parser`.

    Returns
    -------
    IemocapConfig or MeldConfig
        The options given, the config's defaults for the others.

    Example
    -------
    >>> argv = ["iemocap", "--out", "x", "--dialogues", "4", "--turns", "3,5"]
    >>> config = config_from_args(build_parser().parse_args(argv))
    >>> config.n_dialogues, config.turns, config.seed
    (4, (3, 5), 1234)
    """
    config_class = CORPORA[args.corpus][0]
    names = {f.name for f in fields(config_class)}
    return config_class(
        **{key: value for key, value in vars(args).items() if key in names}
    )


def main(argv=None):
    """Generates the corpus the command line asks for.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> import tempfile
    >>> out = tempfile.mkdtemp() + "/iemo"
    >>> main(["iemocap", "--out", out, "--dialogues", "1", "--turns", "2,2"])
    /...iemo
    0
    """
    args = build_parser().parse_args(argv)
    generate = CORPORA[args.corpus][1]
    root = generate(
        args.out,
        config_from_args(args),
        n_jobs=args.jobs,
        overwrite=args.overwrite,
    )
    print(root)
    return 0

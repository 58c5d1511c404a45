#!/usr/bin/env python3
"""The long-conversation experiment: does the parameter memory help when a
conversation is much longer than the context window?

Runs the IEMOCAP recipe (``recipes/IEMOCAP/train.py``) several times on one
generated corpus whose test session holds long dialogues (200 turns,
speakers never seen in training) next to IEMOCAP-length ones, then pools
the seeds (``experiments/summary.py``). The runs are declared in
``experiments/long_conversations.yaml``, among them:

* ``classifier`` (``hparams/classifier.yaml``): the utterance-only baseline;
* ``plain`` (``hparams/dpm.yaml``): the SLLM read with the utterance alone,
  one pass (truncated), the sliding window and DPM;
* ``dpm_aware`` (``hparams/dpm_aware.yaml``): the
  plain model of the same seed fine-tuned through the memory
  (``--init_from``), read with the sliding window and DPM;
* ``feedback_init`` (``hparams/dpm_feedback.yaml``): the recommended
  two-stage recipe (utterance classifier, then the SLLM with emotion
  feedback from its tensors);
* ``placements``, ``placements_b`` and ``sweeps`` … ``sweeps_g``: the plain
  model read with other memory placements and settings;
* ablations: ``plain_leaky``, ``plain_bs1``, ``ctx_emotion``, ``context``,
  ``mixed``, ``speakers``, ``speakers_mixed``, ``feedback``.

Every run shares one unit codebook and unit cache. A run that starts from
another run's tensors (``init_from``) runs after it, whatever the order of
``--runs``. Nothing here is tuned on the test split. The corpus is
synthetic; so are the results.

Usage (from the repository root)::

    python -m experiments.long_conversations \\
        --output_folder results/long_iemocap --seeds 1 2 3

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from experiments.grid import GRID_FILE, load_grid, run_dir, run_order
from experiments.summary import summarize

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "IEMOCAP"
logger = logging.getLogger("long_conversations")
#: The rows of the recipe YAMLs' ``test_strategies``.
YAML_ROWS = ("utterance", "one_pass", "sliding", "dpm")


def parse_args(argv=None):
    """Command-line options (``--runs``: the grid's ``default_runs``
    unless given)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", default=str(GRID_FILE), help="the run grid")
    p.add_argument("--data_folder", default="data/long_iemocap")
    p.add_argument("--output_folder", default="results/long_iemocap")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--runs", nargs="+", help="runs of the grid")
    p.add_argument("--dialogues", type=int, default=60)
    p.add_argument("--long", type=int, default=2, help="long test dialogues")
    p.add_argument("--long_turns", type=int, default=200)
    p.add_argument(
        "--subdued_share",
        type=float,
        default=0.0,
        help="share of flat-sounding turns (synth's subdued_share)",
    )
    p.add_argument("--llm_layers", type=int, default=4)
    p.add_argument("--n_units", type=int, default=64)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--aware_epochs", type=int, default=1, help="DPM-aware fine-tuning"
    )
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--threads", type=int, help="torch threads per run")
    p.add_argument(
        "--placement_seeds",
        type=int,
        nargs="*",
        default=[1],
        help="seeds whose plain model is read with other placements",
    )
    p.add_argument(
        "--sweep_seeds",
        type=int,
        nargs="*",
        default=[1],
        help="seeds whose plain model is read with other memory settings",
    )
    p.add_argument("--summary_only", action="store_true")
    args = p.parse_args(argv)
    grid = load_grid(args.grid)
    if args.runs is None:
        args.runs = list(grid.default_runs)
    unknown = [run for run in args.runs if run not in grid.runs]
    if unknown:
        p.error(f"--runs: {unknown} not in {args.grid} ({list(grid.runs)})")
    return args


def generate_corpus(args):
    """The corpus: ordinary dialogues in all sessions, long ones in 5."""
    from speechbrain_dpm.synth import IemocapConfig, generate_iemocap

    config = IemocapConfig(
        n_dialogues=args.dialogues,
        long_dialogues=args.long,
        long_turns=args.long_turns,
        long_session=5,
        subdued_share=args.subdued_share,
    )
    return generate_iemocap(args.data_folder, config, n_jobs=2)


def init_source(args, run, seed):
    """The model file a run of ``init_from`` starts from."""
    model = run_dir(args.output_folder, run.init_from, seed) / "model"
    return model / "sllm.ckpt"


def recipe_command(args, name, seed, grid=None):
    """The ``train.py`` command line of one run of one seed.

    Arguments
    ---------
    args : argparse.Namespace
        The experiment's options (:func:`parse_args`).
    name : str
        The run.
    seed : int
        The seed.
    grid : experiments.grid.Grid, optional
        The grid (default: ``args.grid``).

    Returns
    -------
    list of str
        The command.
    """
    run = (grid or load_grid(args.grid)).runs[name]
    units = Path(args.output_folder) / "units"
    epochs = vars(args)[run.epochs]
    opts = {
        "data_folder": args.data_folder,
        "output_folder": run_dir(args.output_folder, name, seed),
        "seed": seed,
        "units_folder": units,
        "codebook_path": units / "codebook.ckpt",
        "llm_layers": args.llm_layers,
        "n_units": args.n_units,
        "number_of_epochs": epochs,
        "eval_splits": "[test]",
        # Overrides merge into the YAML's rows: drop those not asked for.
        "test_strategies": json.dumps(
            {**{k: False for k in YAML_ROWS if k not in run.rows}, **run.rows}
        ),
        **run.overrides,
    }
    if run.stage_rows:
        # A two-stage YAML: its first stage trains as long as the second.
        opts["classifier_epochs"] = epochs
    if run.init_from is not None:
        opts["init_from"] = init_source(args, run, seed)
    return [
        sys.executable,
        str(RECIPE / "train.py"),
        str(RECIPE / "hparams" / run.yaml),
        *[f"--{k}={v}" for k, v in opts.items()],
        "--noprogressbar",
    ]


def is_done(args, name, seed, grid):
    """Whether a run of a seed wrote its last row's predictions."""
    rows = grid.runs[name].read_rows
    out = run_dir(args.output_folder, name, seed)
    return (out / "results" / f"test_predictions_{rows[-1]}.jsonl").exists()


def run_recipe(args, name, seed, grid):
    """Runs one recipe (one torch thread: the runs share the cores)."""
    if is_done(args, name, seed, grid):
        logger.info("%s seed %d: done before, kept", name, seed)
        return
    out = run_dir(args.output_folder, name, seed)
    out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or max(1, 2 // args.jobs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    logger.info("%s seed %d: running", name, seed)
    with open(out / f"stdout_{name}.log", "w") as log:
        subprocess.run(
            recipe_command(args, name, seed, grid),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )


def job_list(args, grid):
    """``(run, seed)`` jobs, each after the run it starts from when that
    run is asked for too; fails before any run when a job starts from a
    model that is neither there nor asked for.

    Arguments
    ---------
    args : argparse.Namespace
        The experiment's options (``runs`` and the seeds options).
    grid : experiments.grid.Grid
        The grid.

    Returns
    -------
    list of tuple
        ``(run, seed)``, dependencies first.
    """
    runs = run_order(grid, args.runs)
    jobs = [
        (name, seed)
        for name in runs
        for seed in vars(args)[grid.runs[name].seeds]
    ]
    for name, seed in jobs:
        run = grid.runs[name]
        if (
            run.init_from is None
            or (run.init_from, seed) in jobs
            or is_done(args, name, seed, grid)
        ):
            continue
        source = init_source(args, run, seed)
        if not source.exists():
            raise SystemExit(
                f"{name} seed {seed} starts from {source}, which does not "
                f"exist: add {run.init_from} to --runs"
            )
    return jobs


def _after(future, fn, *args):
    """Calls ``fn(*args)`` once ``future`` (if any) has finished."""
    if future is not None:
        future.result()
    return fn(*args)


def run_jobs(args, grid, jobs):
    """Runs the jobs (:func:`job_list`), ``--jobs`` at a time, each after
    the job it starts from."""
    jobs = list(jobs)
    units = Path(args.output_folder) / "units" / "codebook.ckpt"
    if jobs and not units.exists():
        # The first run fits the shared codebook and unit cache alone.
        run_recipe(args, *jobs.pop(0), grid)
    with ThreadPoolExecutor(args.jobs) as pool:
        waiting = {}
        for name, seed in jobs:
            source = grid.runs[name].init_from
            waiting[(name, seed)] = pool.submit(
                _after,
                waiting.get((source, seed)),
                run_recipe,
                args,
                name,
                seed,
                grid,
            )
        for future in waiting.values():
            future.result()


def main(argv=None):
    """Corpus, runs (``--jobs`` at a time), summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    grid = load_grid(args.grid)
    if not args.summary_only:
        jobs = job_list(args, grid)
        generate_corpus(args)
        run_jobs(args, grid, jobs)
    summarize(grid, args.output_folder, args.data_folder, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

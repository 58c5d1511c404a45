"""The run grid of the long-conversation experiment, read from
``long_conversations.yaml``, and the order its jobs run in.

Authors
 * speechbrain_dpm developers 2026
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The grid that ``long_conversations.py`` runs.
GRID_FILE = Path(__file__).resolve().with_name("long_conversations.yaml")


@dataclass(frozen=True)
class Run:
    """One run of the grid: a recipe YAML trained (or read) once per seed.

    Arguments
    ---------
    name : str
        The run's name (its output folder).
    yaml : str
        The recipe YAML, a file of ``recipes/IEMOCAP/hparams``.
    rows : dict
        Row name -> ``test_strategies`` options, the rows read on test.
    overrides : dict
        The YAML's options changed for this run.
    stage_rows : tuple of str
        Rows a two-stage YAML writes besides ``rows`` (its stage 1).
    init_from : str or None
        The run of the same seed whose trained tensors it starts from.
    epochs : str
        The command-line option giving its number of epochs.
    seeds : str
        The command-line option giving its seeds.
    """

    name: str
    yaml: str
    rows: dict
    overrides: dict = field(default_factory=dict)
    stage_rows: tuple = ()
    init_from: str = None
    epochs: str = "epochs"
    seeds: str = "seeds"

    @property
    def read_rows(self):
        """Every row the run writes predictions for, stage rows first."""
        return [*self.stage_rows, *self.rows]


@dataclass(frozen=True)
class Grid:
    """The experiment's runs, its default selection and its comparisons.

    Arguments
    ---------
    runs : dict
        Run name -> :class:`Run`.
    default_runs : list of str
        The runs of a plain invocation.
    comparisons : list of tuple
        ``("run/row", "run/row")`` pairs whose UA difference gets a CI.
    """

    runs: dict
    default_runs: list
    comparisons: list


RUN_KEYS = {
    "yaml",
    "rows",
    "overrides",
    "stage_rows",
    "init_from",
    "epochs",
    "seeds",
}


def run_dir(output_folder, run, seed):
    """Output folder of one run of one seed.

    Example
    -------
    >>> str(run_dir("out", "plain", 2))
    'out/plain/2'
    """
    return Path(output_folder) / run / str(seed)


def load_grid(path=GRID_FILE):
    """Reads and checks a grid file.

    Arguments
    ---------
    path : str or Path
        The YAML file (default: the experiment's own grid).

    Returns
    -------
    Grid
        The grid, every reference checked.

    Example
    -------
    >>> grid = load_grid()
    >>> grid.runs["dpm_aware"].init_from
    'plain'
    >>> list(grid.runs["plain"].rows)
    ['utterance', 'one_pass', 'sliding', 'dpm']
    """
    with open(path, encoding="utf-8") as fin:
        data = yaml.safe_load(fin)
    runs = {}
    for name, spec in data["runs"].items():
        unknown = set(spec) - RUN_KEYS
        if unknown:
            raise ValueError(f"{path}: run {name}: unknown keys {unknown}")
        runs[name] = Run(
            name=name,
            yaml=spec["yaml"],
            rows=dict(spec["rows"]),
            overrides=dict(spec.get("overrides") or {}),
            stage_rows=tuple(spec.get("stage_rows") or ()),
            init_from=spec.get("init_from"),
            epochs=spec.get("epochs", "epochs"),
            seeds=spec.get("seeds", "seeds"),
        )
    grid = Grid(
        runs=runs,
        default_runs=list(data["default_runs"]),
        comparisons=[tuple(pair) for pair in data["comparisons"]],
    )
    check_grid(grid, path)
    return grid


def check_grid(grid, path="grid"):
    """Fails, naming the entry, on a reference to no run or row, or on a
    cycle of ``init_from``."""
    for run in grid.runs.values():
        if run.init_from is not None and run.init_from not in grid.runs:
            raise ValueError(
                f"{path}: run {run.name}: no run {run.init_from!r} to start "
                "from (init_from)"
            )
    for name in grid.default_runs:
        if name not in grid.runs:
            raise ValueError(f"{path}: default_runs: {name!r} is no run")
    for pair in grid.comparisons:
        for key in pair:
            run, _, row = key.partition("/")
            if run not in grid.runs or row not in grid.runs[run].read_rows:
                raise ValueError(f"{path}: comparison {pair}: no row {key}")
    run_order(grid, list(grid.runs))


def run_order(grid, names):
    """The runs ``names`` ordered so that each comes after the run it
    starts from (``init_from``) when that run is among them; otherwise in
    the order given.

    Arguments
    ---------
    grid : Grid
        The grid.
    names : list of str
        The runs asked for.

    Returns
    -------
    list of str
        The same runs, dependencies first.

    Example
    -------
    >>> run_order(load_grid(), ["dpm_aware", "classifier", "plain"])
    ['plain', 'dpm_aware', 'classifier']
    """
    wanted, order, visiting = set(names), [], set()

    def visit(name):
        """Appends ``name`` after the run it starts from (depth first)."""
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"init_from cycle through run {name!r}")
        visiting.add(name)
        parent = grid.runs[name].init_from
        if parent in wanted:
            visit(parent)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order

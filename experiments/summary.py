"""Pools the long-conversation experiment's runs over seeds.

For the long and the ordinary test dialogues (and the subdued and clear
turns, where the corpus has subdued turns) separately: mean ± std over
seeds of WA, UA, WF1 and macro-F1, accuracy by position, the memory
diagnostics, and 95 % confidence intervals of UA differences (paired block
bootstrap over blocks of consecutive turns, seeds pooled; see
``speechbrain_dpm.metrics.paired_bootstrap_ua``). Written to
``summary.json``, ``summary.md`` and ``by_position_long.png``.

Authors
 * speechbrain_dpm developers 2026
"""

import json
from pathlib import Path

import numpy as np

from experiments.grid import run_dir
from speechbrain_dpm.dpm_strategy import summarize_diagnostics
from speechbrain_dpm.metrics import (
    accuracy_by_position,
    classification_metrics,
    consecutive_blocks,
    paired_bootstrap_ua,
)
from speechbrain_dpm.synth import META_FILE

EMOTIONS = ["neu", "hap", "sad", "ang"]
#: A test dialogue of at least this many turns is a long one.
LONG_MIN_TURNS = 100
#: Test subsets: all turns; long / ordinary dialogues; subdued / clear
#: turns (of all dialogues) where the corpus has subdued turns.
PARTS = ("all", "long", "ordinary", "subdued", "clear")
PART_TITLES = {
    "all": "whole test split",
    "long": "long test dialogues",
    "ordinary": "ordinary test dialogues",
    "subdued": "subdued test turns (all dialogues)",
    "clear": "clear test turns (all dialogues)",
}
POSITION_EDGES = (0, 10, 25, 50, 75, 100)
BLOCK = 20  # turns per bootstrap block (emotions persist across turns)
#: Buckets of turns since the last write, for the memory diagnostics.
DIAGNOSTIC_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def load_rows(output_folder, run, seed, row):
    """Test predictions of one row of one run (``None`` if not run).

    Arguments
    ---------
    output_folder : str or Path
        The experiment's output folder.
    run : str
        The run's name.
    seed : int
        The seed.
    row : str
        The row (strategy) name.

    Returns
    -------
    list of dict or None
        One dict per test utterance, in the file's order.
    """
    path = (
        run_dir(output_folder, run, seed)
        / "results"
        / f"test_predictions_{row}.jsonl"
    )
    if not path.exists():
        return None
    with open(path) as f:
        return [json.loads(line) for line in f]


def subsets(rows, subdued=frozenset()):
    """Rows of the whole split, of the long and of the ordinary dialogues;
    with ``subdued`` (utterance ids), also the subdued and the clear turns
    of all of them.

    Arguments
    ---------
    rows : list of dict
        Predictions with ``dialogue_id`` and ``utt_id``.
    subdued : set of str
        Ids of the subdued turns (none: no subdued/clear parts).

    Returns
    -------
    dict
        Part name (see ``PARTS``) -> its rows.

    Example
    -------
    >>> rows = [{"dialogue_id": "d", "utt_id": f"d_{i}"} for i in range(3)]
    >>> parts = subsets(rows, subdued={"d_1"})
    >>> len(parts["ordinary"]), [r["utt_id"] for r in parts["subdued"]]
    (3, ['d_1'])
    """
    length = {}
    for r in rows:
        length[r["dialogue_id"]] = length.get(r["dialogue_id"], 0) + 1
    long_ = [r for r in rows if length[r["dialogue_id"]] >= LONG_MIN_TURNS]
    short = [r for r in rows if length[r["dialogue_id"]] < LONG_MIN_TURNS]
    parts = {"all": list(rows), "long": long_, "ordinary": short}
    if subdued:
        parts["subdued"] = [r for r in rows if r["utt_id"] in subdued]
        parts["clear"] = [r for r in rows if r["utt_id"] not in subdued]
    return parts


def subdued_turns(data_folder):
    """Ids of the turns the generator delivered subdued (none if unknown).

    Arguments
    ---------
    data_folder : str or Path
        The generated corpus (its ``SYNTHETIC_meta.json``).

    Returns
    -------
    frozenset of str
        Utterance ids.
    """
    path = Path(data_folder) / META_FILE
    if not path.exists():
        return frozenset()
    with open(path) as f:
        utts = json.load(f)["utterances"]
    return frozenset(k for k, u in utts.items() if u.get("subdued"))


def paired_ci(pairs, n_boot=2000, seed=0):
    """95 % CI of mean-over-seeds UA(a) - UA(b), block bootstrap.

    Arguments
    ---------
    pairs : list of tuple
        Per seed, the aligned rows of a and b (same utterances in the same
        order). Blocks are ``BLOCK`` consecutive turns of one dialogue.
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of the resampling.

    Returns
    -------
    tuple of float
        ``(difference, low, high)``, in UA points.
    """
    samples = [
        (
            [r["label"] for r in rows_a],
            [r["pred"] for r in rows_a],
            [r["pred"] for r in rows_b],
            consecutive_blocks(
                [r["dialogue_id"] for r in rows_a],
                [r["position"] for r in rows_a],
                BLOCK,
            ),
        )
        for rows_a, rows_b in pairs
    ]
    return paired_bootstrap_ua(samples, n_boot=n_boot, seed=seed)


def row_metrics(rows):
    """WA, UA, WF1, macro-F1, accuracy by position and, for DPM rows, the
    memory diagnostics of one seed's rows."""
    y = [r["label"] for r in rows]
    p = [r["pred"] for r in rows]
    m = classification_metrics(y, p, EMOTIONS)
    m = {k: m[k] for k in ("WA", "UA", "WF1", "macro_F1", "n")}
    m["by_position"] = accuracy_by_position(
        y, p, [r["position"] for r in rows], edges=POSITION_EDGES
    )
    diag = [r["diagnostics"] for r in rows if "diagnostics" in r]
    if diag:
        m["diagnostics"] = summarize_diagnostics(
            diag,
            [r["label"] for r in rows if "diagnostics" in r],
            buckets=DIAGNOSTIC_BUCKETS,
        )
    return m


def pool_seeds(by_seed):
    """Per part: each seed's metrics and their mean ± std over seeds."""
    entry = {"seeds": sorted(by_seed)}
    for part in PARTS:
        # (no subdued / clear part on a corpus without subdued turns)
        per_seed = [
            row_metrics(parts[part])
            for _, parts in sorted(by_seed.items())
            if parts.get(part)
        ]
        if not per_seed:
            continue
        agg = {"per_seed": per_seed}
        for k in ("WA", "UA", "WF1", "macro_F1"):
            vals = np.array([m[k] for m in per_seed])
            agg[k] = {
                "mean": float(vals.mean()),
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
            }
        entry[part] = agg
    return entry


def compare(preds, comparisons):
    """UA difference and its CI of every comparison both rows of which
    were run, per part, over the seeds they share."""
    out = {}
    for a, b in comparisons:
        if a not in preds or b not in preds:
            continue
        seeds = sorted(set(preds[a]) & set(preds[b]))
        for part in PARTS:
            pairs = []
            for seed in seeds:
                ra = preds[a][seed].get(part)
                rb = preds[b][seed].get(part)
                if ra and [r["utt_id"] for r in ra] == [
                    r["utt_id"] for r in rb
                ]:
                    pairs.append((ra, rb))
            if pairs:
                point, low, high = paired_ci(pairs)
                out[f"{a} - {b} ({part})"] = {
                    "seeds": len(pairs),
                    "UA_diff": point,
                    "ci95": [low, high],
                }
    return out


def summarize(grid, output_folder, data_folder, seeds):
    """Pools the runs into ``summary.json`` / ``summary.md`` / plots.

    Arguments
    ---------
    grid : experiments.grid.Grid
        The runs and comparisons.
    output_folder : str or Path
        The experiment's output folder.
    data_folder : str or Path
        The corpus (for its subdued turns).
    seeds : list of int
        The seeds to pool.

    Returns
    -------
    dict
        ``{"table", "comparisons", "synthetic"}``, as written.
    """
    out = Path(output_folder)
    preds = {}
    subdued = subdued_turns(data_folder)
    for run in grid.runs.values():
        for row in run.read_rows:
            key = f"{run.name}/{row}"
            for seed in seeds:
                found = load_rows(out, run.name, seed, row)
                if found is not None:
                    preds.setdefault(key, {})[seed] = subsets(found, subdued)
    table = {key: pool_seeds(by_seed) for key, by_seed in preds.items()}
    summary = {
        "table": table,
        "comparisons": compare(preds, grid.comparisons),
        "synthetic": True,
    }
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.json", "w") as f:
        json.dump(summary, f, indent=1)
    (out / "summary.md").write_text(render_markdown(summary))
    plot_by_position(table, out / "by_position_long.png", "long")
    print((out / "summary.md").read_text())
    return summary


def render_markdown(summary):
    """The summary as Markdown tables."""
    lines = [
        "**SYNTHETIC corpus** (espeak-ng speech; no estimate on real speech).",
        "",
    ]
    for part in PARTS:
        if not any(part in entry for entry in summary["table"].values()):
            continue
        lines += [
            f"### {PART_TITLES[part]}",
            "",
            "| run / strategy | seeds | WA | UA | WF1 | macro-F1 "
            "| transfer ratio | drift/write | flips r→w / w→r |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, entry in summary["table"].items():
            agg = entry.get(part)
            if agg is None:
                continue
            cells = [
                f"{agg[k]['mean']:.1f} ± {agg[k]['std']:.1f}"
                for k in ("WA", "UA", "WF1", "macro_F1")
            ]
            diag = [
                m["diagnostics"] for m in agg["per_seed"] if "diagnostics" in m
            ]
            if diag:
                ratio = np.mean([d["transfer"]["all"]["ratio"] for d in diag])
                drift = np.mean([d["drift"]["all"] for d in diag])
                rw = np.mean([d["flips"]["right_to_wrong"] for d in diag])
                wr = np.mean([d["flips"]["wrong_to_right"] for d in diag])
                cells += [
                    f"{ratio:.3f}",
                    f"{drift:.3f}",
                    f"{rw:.1f} / {wr:.1f}",
                ]
            else:
                cells += ["–", "–", "–"]
            lines.append(
                f"| {key} | {len(agg['per_seed'])} | "
                + " | ".join(cells)
                + " |"
            )
        lines.append("")
    lines += _position_tables(summary["table"])
    lines += [
        "### UA differences (mean over seeds, 95 % block-bootstrap CI)",
        "",
        "| comparison | seeds | ΔUA | 95 % CI |",
        "|---|---|---|---|",
    ]
    for name, c in summary["comparisons"].items():
        lo, hi = c["ci95"]
        lines.append(
            f"| {name} | {c['seeds']} | {c['UA_diff']:+.1f} "
            f"| [{lo:+.1f}, {hi:+.1f}] |"
        )
    return "\n".join(lines) + "\n"


def _position_tables(table, part="long"):
    """Accuracy and memory transfer by turn position (mean over seeds)."""
    rows, names = [], None
    for key, entry in table.items():
        agg = entry.get(part)
        if agg is None:
            continue
        curves = [m["by_position"] for m in agg["per_seed"]]
        names = names or list(curves[0])
        acc = [np.mean([c[n]["acc"] for c in curves]) for n in names]
        rows.append(f"| {key} | " + " | ".join(f"{a:.1f}" for a in acc) + " |")
    if not rows:
        return []
    lines = [
        f"### Accuracy by turn position, {part} dialogues (%, mean over seeds)",
        "",
        "| run / strategy | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        *rows,
        "",
    ]
    diag_rows, buckets = [], None
    for key, entry in table.items():
        agg = entry.get(part) or {}
        diags = [
            m["diagnostics"]
            for m in agg.get("per_seed", [])
            if "diagnostics" in m
        ]
        if not diags:
            continue
        buckets = buckets or [b for b in diags[0]["transfer"] if b != "all"]
        cells = []
        for b in buckets:
            # A bucket without a write before it (e.g. every 4) has no ratio.
            found = [
                d["transfer"][b]["ratio"]
                for d in diags
                if d["transfer"].get(b, {}).get("ratio") is not None
            ]
            cells.append(f"{np.mean(found):.3f}" if found else "–")
        diag_rows.append(f"| {key} | " + " | ".join(cells) + " |")
    if diag_rows:
        lines += [
            f"### Memory transfer by turn position, {part} dialogues "
            "(audio loss before the turn's own write, with / without "
            "memory; mean over seeds)",
            "",
            "| run / strategy | " + " | ".join(buckets) + " |",
            "|---|" + "---|" * len(buckets),
            *diag_rows,
            "",
        ]
    return lines


def plot_by_position(table, path, part):
    """Accuracy by dialogue position, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, entry in table.items():
        agg = entry.get(part)
        if agg is None:
            continue
        curves = [m["by_position"] for m in agg["per_seed"]]
        names = list(curves[0])
        acc = [np.mean([c[n]["acc"] for c in curves]) for n in names]
        ax.plot(range(len(names)), acc, marker="o", label=key)
        ax.set_xticks(range(len(names)), names, rotation=45)
    ax.set_xlabel("turn position")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy by position, {part} dialogues (SYNTHETIC)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

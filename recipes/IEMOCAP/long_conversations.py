#!/usr/bin/env python3
"""The long-conversation experiment: does the parameter memory help when a
conversation is much longer than the context window?

Runs the IEMOCAP recipe (``train.py``) several times on one generated corpus
whose test session holds long dialogues (200 turns, speakers never seen in
training) next to IEMOCAP-length ones, then pools the seeds:

* ``classifier`` (``hparams/classifier.yaml``): the utterance-only baseline;
* ``plain`` (``hparams/dpm.yaml``): the SLLM read with the utterance alone,
  one pass (truncated), the sliding window and DPM;
* ``dpm_aware`` (``hparams/dpm_aware.yaml``): the
  plain model of the same seed fine-tuned through the memory
  (``--init_from``), read with the sliding window and DPM;
* ``placements``: the plain model read with the temporary LoRA on
  attention only, and with a shielded read-out; ``placements_b`` (the sweep
  seeds): on the MLPs only, and on the lower 2 blocks only;
* ``sweeps`` … ``sweeps_g`` (parts of one sweep, seed 1 by default): the
  plain model read with one memory setting changed (stepping every 2 / 4
  sentences, ``n_r`` 128 / 512 / 1024 with their sliding windows, memory
  lr, rank, writes without the context's gradient, one pass over the
  LLM's whole 8192-token window);
* ``plain_bs1``: ``plain`` with one window per optimizer step;
* ``ctx_emotion``, ``context``, ``mixed``: the SLLM without the memory rows,
  trained without the audio loss, as in ``context.yaml``, and also on each
  utterance alone (``utterance_windows``); ``speakers`` and
  ``speakers_mixed``: ``context`` and ``mixed`` with speaker tokens
  (``speaker_slots: 3``).

Every run shares one unit codebook and unit cache. The summary
(``summary.json``, ``summary.md``, ``by_position.png``) gives, for the long
and the ordinary test dialogues separately, mean ± std over seeds of WA, UA,
WF1 and macro-F1, accuracy by position, the memory diagnostics, and
95 % confidence intervals of UA differences (paired block bootstrap over
blocks of consecutive turns, seeds pooled). Nothing here is tuned on the
test split: every option is the recipe's default or set below before the
first run. The corpus is synthetic; so are the results.

Usage (from the repository root)::

    python recipes/IEMOCAP/long_conversations.py \\
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

import numpy as np

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("long_conversations")

N_R = 256
N_LIMIT = 512
#: Rows of each run: name -> options of ``test_strategies``.
PLAIN_ROWS = {
    "utterance": {},
    "one_pass": {"max_tokens": N_LIMIT},
    "sliding": {"n_context": N_R, "n_limit": N_LIMIT},
    "dpm": {"n_context": N_R, "n_limit": N_LIMIT, "diagnostics": True},
}
#: Where the temporary LoRA lives (read with the plain model, --test_only).
PLACEMENT_ROWS = {
    "dpm_attention": {
        "strategy": "dpm",
        "target_modules": "attention",
        "n_context": N_R,
        "n_limit": N_LIMIT,
        "diagnostics": True,
    },
    "dpm_shielded": {
        "strategy": "dpm",
        "shield": True,
        "n_context": N_R,
        "n_limit": N_LIMIT,
        "diagnostics": True,
    },
}
#: More placements, read with seed 1's plain model only (CPU time).
PLACEMENT_ROWS_B = {
    name: {**PLACEMENT_ROWS["dpm_attention"], "target_modules": placement}
    for name, placement in (("dpm_mlp", "mlp"), ("dpm_lower2", "lower-2"))
}
#: One memory setting changed at a time from the recipe's defaults (read
#: with the plain model). An ablation on the test split, not
#: used to choose any default; n_r rows come with their own sliding window.
SWEEP_ROWS = {
    "dpm_every2": {**PLAIN_ROWS["dpm"], "strategy": "dpm", "every": 2},
    "dpm_every4": {**PLAIN_ROWS["dpm"], "strategy": "dpm", "every": 4},
    "sliding_nr128": {"strategy": "sliding", "n_context": 128, "n_limit": 384},
    "dpm_nr128": {
        **PLAIN_ROWS["dpm"],
        "strategy": "dpm",
        "n_context": 128,
        "n_limit": 384,
    },
    "sliding_nr512": {"strategy": "sliding", "n_context": 512, "n_limit": 768},
    "dpm_nr512": {
        **PLAIN_ROWS["dpm"],
        "strategy": "dpm",
        "n_context": 512,
        "n_limit": 768,
    },
    "sliding_nr1024": {
        "strategy": "sliding",
        "n_context": 1024,
        "n_limit": 1280,
    },
    "dpm_nr1024": {
        **PLAIN_ROWS["dpm"],
        "strategy": "dpm",
        "n_context": 1024,
        "n_limit": 1280,
    },
    "dpm_lr3e-4": {**PLAIN_ROWS["dpm"], "strategy": "dpm", "lr": 3e-4},
    "dpm_lr3e-3": {**PLAIN_ROWS["dpm"], "strategy": "dpm", "lr": 3e-3},
    "dpm_rank2": {**PLAIN_ROWS["dpm"], "strategy": "dpm", "rank": 2},
    "dpm_rank32": {
        **PLAIN_ROWS["dpm"],
        "strategy": "dpm",
        "rank": 32,
        "alpha": 64,
    },
    "dpm_no_context_grad": {
        **PLAIN_ROWS["dpm"],
        "strategy": "dpm",
        "context_grad": False,
    },
    # Full context where it fits: one pass over SmolLM2's whole 8192-token
    # window (an ordinary dialogue fits; a 200-turn one is cut about twice).
    "one_pass_8192": {"strategy": "one_pass", "max_tokens": 8192},
}
#: The sweep in parts, so that several workers share it.
SWEEP_PARTS = {
    "sweeps": ("dpm_every2", "dpm_every4"),
    "sweeps_b": ("sliding_nr128", "dpm_nr128", "dpm_lr3e-4", "dpm_lr3e-3"),
    "sweeps_c": ("sliding_nr1024", "dpm_nr1024"),
    "sweeps_d": ("dpm_no_context_grad",),
    "sweeps_e": ("dpm_rank2", "dpm_rank32"),
    "sweeps_f": ("sliding_nr512", "dpm_nr512"),
    "sweeps_g": ("one_pass_8192",),
}
#: DPM-aware models are read with the memory they were trained through.
AWARE_ROWS = {
    "sliding": PLAIN_ROWS["sliding"],
    "dpm": {
        "strategy": "dpm",
        "n_context": N_R,
        "n_limit": N_LIMIT,
        "diagnostics": True,
    },
}
#: DPM-aware training: fine-tunes the plain model of the same seed
#: (``init_from``) on runs of 4 written + 2 read turns, not overlapping
#: (stride 6), differentiated through the inner step.
AWARE = {"run_stride": 6, "meta_order": "second"}
READ = {"number_of_epochs": 0}
RUNS = {
    "classifier": ("classifier.yaml", {}, {"utterance": {}}),
    "plain": ("dpm.yaml", {}, PLAIN_ROWS),
    "dpm_aware": ("dpm_aware.yaml", AWARE, AWARE_ROWS),
    # Ablation: the audio loss (and every write) sees the continuous
    # features too, as the read-out does.
    "plain_leaky": (
        "dpm.yaml",
        {"audio_loss_input": "units+continuous"},
        PLAIN_ROWS,
    ),
    # The SLLM trained on dialogue windows with the emotion loss only: is
    # it the audio loss that the classifier's lead comes from?
    "ctx_emotion": (
        "context.yaml",
        {"audio_loss_weight": 0.0, "emotion_loss_weight": 1.0},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # The SLLM without the memory (``context.yaml``), read with and
    # without context: the cheaper run for larger corpora.
    "context": (
        "context.yaml",
        {},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # The SLLM also trained on each utterance alone (the classifier's
    # windows) next to the dialogue windows.
    "mixed": (
        "dpm.yaml",
        {"utterance_windows": True},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # Speaker tokens (first / second / other speaker of the dialogue) on
    # every turn, so that the context tells whose earlier turns are whose:
    # emotions persist per speaker.
    "speakers": (
        "context.yaml",
        {"speaker_slots": 3},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    "speakers_mixed": (
        "dpm.yaml",
        {"speaker_slots": 3, "utterance_windows": True},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # Emotion feedback (each earlier turn followed by its emotion token:
    # gold with noise in training, the model's own prediction when read)
    # with speaker tokens: emotions persist per speaker, so the last
    # prediction for the same speaker is the prior a subdued turn needs.
    "feedback": (
        "context.yaml",
        {"speaker_slots": 3, "emotion_feedback": True},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # Emotion feedback, starting from the classifier of the same seed
    # (``init_from``): the read-out of a single utterance is trained first,
    # then the full SLLM loss on dialogue windows whose fed-back emotions
    # are the model's own reads (``feedback_source: own``). No speaker
    # tokens (the classifier's token space).
    "feedback_init": (
        "dpm.yaml",  # (the YAML with init_from)
        {"emotion_feedback": True, "feedback_source": "own"},
        {k: PLAIN_ROWS[k] for k in ("utterance", "one_pass", "sliding")},
    ),
    # The plain recipe with one window per optimizer step: as many steps
    # per epoch as the classifier takes (its windows hold one utterance).
    "plain_bs1": ("dpm.yaml", {"batch_size": 1}, PLAIN_ROWS),
    # Evaluation only (0 epochs) of the "plain" run's model (init_from),
    # each in its own folder.
    "placements": ("dpm.yaml", READ, PLACEMENT_ROWS),
    "placements_b": ("dpm.yaml", READ, PLACEMENT_ROWS_B),
    **{
        part: ("dpm.yaml", READ, {k: SWEEP_ROWS[k] for k in rows})
        for part, rows in SWEEP_PARTS.items()
    },
}
#: Runs that only read the plain run's model: run -> their seeds option.
READ_ONLY = {
    "placements": "placement_seeds",
    "placements_b": "sweep_seeds",
    **dict.fromkeys(SWEEP_PARTS, "sweep_seeds"),
}
#: Runs that start from another run's trained tensors of the same seed.
INIT_FROM = {
    "dpm_aware": "plain",
    **dict.fromkeys(READ_ONLY, "plain"),
    "feedback_init": "classifier",
}
DEFAULT_RUNS = ["plain", "classifier", "dpm_aware", "placements"]
#: Pairs (run/row, run/row) whose UA difference gets a confidence interval.
COMPARISONS = [
    ("plain/sliding", "classifier/utterance"),
    ("plain/sliding", "plain/utterance"),
    ("ctx_emotion/sliding", "classifier/utterance"),
    ("plain/one_pass", "classifier/utterance"),
    ("context/one_pass", "classifier/utterance"),
    ("context/sliding", "classifier/utterance"),
    ("context/sliding", "context/utterance"),
    ("mixed/sliding", "classifier/utterance"),
    ("mixed/one_pass", "classifier/utterance"),
    ("mixed/sliding", "mixed/utterance"),
    ("speakers/sliding", "classifier/utterance"),
    ("speakers/one_pass", "classifier/utterance"),
    ("speakers/sliding", "speakers/utterance"),
    ("speakers/sliding", "context/sliding"),
    ("speakers_mixed/sliding", "classifier/utterance"),
    ("speakers_mixed/one_pass", "classifier/utterance"),
    ("speakers_mixed/sliding", "speakers_mixed/utterance"),
    ("speakers_mixed/sliding", "mixed/sliding"),
    ("ctx_emotion/sliding", "ctx_emotion/utterance"),
    ("feedback/sliding", "classifier/utterance"),
    ("feedback/one_pass", "classifier/utterance"),
    ("feedback/sliding", "feedback/utterance"),
    ("feedback/sliding", "speakers/sliding"),
    ("feedback_init/sliding", "classifier/utterance"),
    ("feedback_init/one_pass", "classifier/utterance"),
    ("feedback_init/sliding", "feedback_init/utterance"),
    ("plain_bs1/sliding", "classifier/utterance"),
    ("plain_bs1/sliding", "plain_bs1/utterance"),
    ("plain_bs1/dpm", "plain_bs1/sliding"),
    ("plain/dpm", "plain/sliding"),
    ("placements/dpm_attention", "plain/sliding"),
    ("placements/dpm_shielded", "plain/sliding"),
    ("placements_b/dpm_mlp", "plain/sliding"),
    ("placements_b/dpm_lower2", "plain/sliding"),
    ("dpm_aware/dpm", "plain/sliding"),
    ("dpm_aware/dpm", "dpm_aware/sliding"),
    ("plain_leaky/dpm", "plain_leaky/sliding"),
    ("plain/sliding", "plain_leaky/sliding"),
    *[
        (f"{part}/{row}", "plain/sliding")
        for part, rows in SWEEP_PARTS.items()
        for row in rows
    ],
    # DPM against the sliding window of the same n_r.
    ("sweeps_b/dpm_nr128", "sweeps_b/sliding_nr128"),
    ("sweeps_f/dpm_nr512", "sweeps_f/sliding_nr512"),
    ("sweeps_c/dpm_nr1024", "sweeps_c/sliding_nr1024"),
    ("sweeps_d/dpm_no_context_grad", "plain/dpm"),
    ("sweeps_g/one_pass_8192", "plain/one_pass"),
]
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


def parse_args(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_folder", default="data/long_iemocap")
    p.add_argument("--output_folder", default="results/long_iemocap")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=RUNS)
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
    return p.parse_args(argv)


def generate_corpus(args):
    """The corpus: ordinary dialogues in all sessions, long ones in 5."""
    from speechbrain_dpm.synth import generate_iemocap

    return generate_iemocap(
        args.data_folder,
        n_dialogues=args.dialogues,
        long_dialogues=args.long,
        long_turns=args.long_turns,
        long_session=5,
        subdued_share=args.subdued_share,
        n_jobs=2,
    )


def run_dir(args, run, seed):
    """Output folder of one recipe run."""
    return Path(args.output_folder) / run / str(seed)


def recipe_command(args, run, seed):
    """The ``train.py`` command line of one run."""
    yaml_name, overrides, rows = RUNS[run]
    units = Path(args.output_folder) / "units"
    opts = {
        "data_folder": args.data_folder,
        "output_folder": run_dir(args, run, seed),
        "seed": seed,
        "units_folder": units,
        "codebook_path": units / "codebook.ckpt",
        "llm_layers": args.llm_layers,
        "n_units": args.n_units,
        "number_of_epochs": (
            args.aware_epochs if run == "dpm_aware" else args.epochs
        ),
        "eval_splits": "[test]",
        # Overrides merge into the YAML's rows: drop those not asked for.
        "test_strategies": json.dumps(
            {**{k: False for k in PLAIN_ROWS if k not in rows}, **rows}
        ),
        **overrides,
    }
    if run in INIT_FROM:
        source = run_dir(args, INIT_FROM[run], seed) / "model" / "sllm.ckpt"
        opts["init_from"] = source
    return [
        sys.executable,
        str(HERE / "train.py"),
        str(HERE / "hparams" / yaml_name),
        *[f"--{k}={v}" for k, v in opts.items()],
        "--noprogressbar",
    ]


def run_recipe(args, run, seed):
    """Runs one recipe (one torch thread: the runs share the cores)."""
    out = run_dir(args, run, seed)
    rows = RUNS[run][2]
    last = out / "results" / f"test_predictions_{list(rows)[-1]}.jsonl"
    if last.exists():
        logger.info("%s seed %d: done before, kept", run, seed)
        return
    out.mkdir(parents=True, exist_ok=True)
    threads = args.threads or max(1, 2 // args.jobs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    logger.info("%s seed %d: running", run, seed)
    with open(out / f"stdout_{run}.log", "w") as log:
        subprocess.run(
            recipe_command(args, run, seed),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
        )


# ---------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------


def load_rows(args, run, seed, row):
    """Predictions of one row of one run (``None`` if not run)."""
    path = (
        run_dir(args, run, seed) / "results" / f"test_predictions_{row}.jsonl"
    )
    if not path.exists():
        return None
    with open(path) as f:
        return [json.loads(line) for line in f]


def subsets(rows, subdued=frozenset()):
    """Rows of the whole split, of the long and of the ordinary dialogues;
    with ``subdued`` (utterance ids), also the subdued and the clear turns
    of all of them."""
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
    """Ids of the turns the generator delivered subdued (none if unknown)."""
    from speechbrain_dpm.synth import META_FILE

    path = Path(data_folder) / META_FILE
    if not path.exists():
        return frozenset()
    with open(path) as f:
        utts = json.load(f)["utterances"]
    return frozenset(k for k, u in utts.items() if u.get("subdued"))


def ua(y_true, y_pred, n_classes):
    """Unweighted accuracy (mean recall over the classes present)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [
        np.mean(y_pred[y_true == c] == c)
        for c in range(n_classes)
        if np.any(y_true == c)
    ]
    return 100.0 * float(np.mean(recalls))


def blocks_of(rows):
    """Indices of ``rows`` grouped in blocks of ``BLOCK`` consecutive turns
    of one dialogue (the bootstrap's resampling unit)."""
    groups = {}
    for i, r in enumerate(rows):
        groups.setdefault(
            (r["dialogue_id"], r["position"] // BLOCK), []
        ).append(i)
    return list(groups.values())


def paired_ci(pairs, n_classes, n_boot=2000, seed=0):
    """95 % CI of mean-over-seeds UA(a) - UA(b), block bootstrap.

    ``pairs`` holds, per seed, the aligned rows of a and b (same utterances
    in the same order). Each replicate resamples the blocks of every seed.
    """
    rng = np.random.default_rng(seed)
    prepared = []
    for rows_a, rows_b in pairs:
        y = np.array([r["label"] for r in rows_a])
        pa = np.array([r["pred"] for r in rows_a])
        pb = np.array([r["pred"] for r in rows_b])
        prepared.append((y, pa, pb, blocks_of(rows_a)))
    point = np.mean(
        [
            ua(y, pa, n_classes) - ua(y, pb, n_classes)
            for y, pa, pb, _ in prepared
        ]
    )
    reps = []
    for _ in range(n_boot):
        diffs = []
        for y, pa, pb, blocks in prepared:
            pick = rng.integers(0, len(blocks), len(blocks))
            idx = np.concatenate([blocks[k] for k in pick])
            diffs.append(
                ua(y[idx], pa[idx], n_classes) - ua(y[idx], pb[idx], n_classes)
            )
        reps.append(np.mean(diffs))
    low, high = np.percentile(reps, [2.5, 97.5])
    return float(point), float(low), float(high)


def summarize(args):
    """Pools the runs into ``summary.json`` / ``summary.md`` / plots."""
    from speechbrain_dpm.dpm_strategy import summarize_diagnostics
    from speechbrain_dpm.metrics import (
        accuracy_by_position,
        classification_metrics,
    )

    out = Path(args.output_folder)
    emotions = ["neu", "hap", "sad", "ang"]
    n_classes = len(emotions)
    table, preds = {}, {}
    subdued = subdued_turns(args.data_folder)
    for run, (_, _, rows) in RUNS.items():
        for row in rows:
            key = f"{run}/{row}"
            for seed in args.seeds:
                found = load_rows(args, run, seed, row)
                if found is not None:
                    preds.setdefault(key, {})[seed] = subsets(found, subdued)
    buckets = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    for key, by_seed in preds.items():
        entry = {"seeds": sorted(by_seed)}
        for part in PARTS:
            per_seed = []
            for _, parts in sorted(by_seed.items()):
                rows = parts[part]
                if not rows:
                    continue
                y = [r["label"] for r in rows]
                p = [r["pred"] for r in rows]
                m = classification_metrics(y, p, emotions)
                m = {k: m[k] for k in ("WA", "UA", "WF1", "macro_F1", "n")}
                m["by_position"] = accuracy_by_position(
                    y, p, [r["position"] for r in rows], edges=POSITION_EDGES
                )
                diag = [r["diagnostics"] for r in rows if "diagnostics" in r]
                if diag:
                    m["diagnostics"] = summarize_diagnostics(
                        diag,
                        [r["label"] for r in rows if "diagnostics" in r],
                        buckets=buckets,
                    )
                per_seed.append(m)
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
        table[key] = entry
    comparisons = {}
    for a, b in COMPARISONS:
        if a not in preds or b not in preds:
            continue
        seeds = sorted(set(preds[a]) & set(preds[b]))
        for part in PARTS:
            pairs = []
            for seed in seeds:
                ra, rb = preds[a][seed][part], preds[b][seed][part]
                if ra and [r["utt_id"] for r in ra] == [
                    r["utt_id"] for r in rb
                ]:
                    pairs.append((ra, rb))
            if pairs:
                point, low, high = paired_ci(pairs, n_classes)
                comparisons[f"{a} - {b} ({part})"] = {
                    "seeds": len(pairs),
                    "UA_diff": point,
                    "ci95": [low, high],
                }
    summary = {"table": table, "comparisons": comparisons, "synthetic": True}
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


def _after(future, fn, *args):
    if future is not None:
        future.result()
    return fn(*args)


def main(argv=None):
    """Corpus, runs (``--jobs`` at a time), summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    if not args.summary_only:
        generate_corpus(args)
        # Run by run, so that no worker waits for a model still training.
        jobs = [
            (run, seed)
            for run in args.runs
            for seed in getattr(args, READ_ONLY.get(run, "seeds"))
        ]
        units = Path(args.output_folder) / "units" / "codebook.ckpt"
        if not units.exists():
            # The first run fits the shared codebook and unit cache alone.
            run_recipe(args, *jobs.pop(0))
        with ThreadPoolExecutor(args.jobs) as pool:
            waiting = {}
            for run, seed in jobs:
                # placements/sweeps read, dpm_aware fine-tunes the plain
                # model, feedback_init starts from the classifier
                after = None
                if run in INIT_FROM:
                    after = waiting.get((INIT_FROM[run], seed))
                waiting[(run, seed)] = pool.submit(
                    _after, after, run_recipe, args, run, seed
                )
            for future in waiting.values():
                future.result()
    summarize(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

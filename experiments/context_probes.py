#!/usr/bin/env python3
"""Why does conversation context not help on the generated corpus?

Three cheap probes over the outputs of the long-conversation experiment
(``experiments/long_conversations.py``; no training of the SLLM, seconds on
a CPU):

1. **Late fusion of a run's own predictions.** Each turn's log-probabilities
   are added to ``w`` times a running average of the same speaker's earlier
   turns' log-probabilities (the model's outputs, never the gold labels).
   If the errors of neighbouring turns were independent, emotion
   persistence would make this a large gain.
2. **Speaker normalisation of the input features.** A logistic-regression
   probe on each utterance's pooled continuous features (mean and std of
   the frames the SLLM sees), raw, minus the running mean of the same
   speaker's *earlier* turns in the dialogue (causal: what a streaming
   model could do), or minus the mean of *all* the speaker's turns in the
   dialogue (non-causal: it needs the future).
3. **Carry-over rule.** A turn read as neutral takes the class that the
   same speaker's previous turn was read as (the run's own reads). On a
   corpus with subdued turns (flat-sounding, labelled with the speaker's
   persisting emotion) this is the simplest use of context a model could
   learn; the table splits subdued from clear turns.

The corpus is synthetic; so are the results.

Usage (from the repository root, after the experiment)::

    python -m experiments.context_probes --output_folder results/long_exp \
        --data_folder data/long_iemocap

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from experiments.grid import run_dir
from experiments.summary import (
    EMOTIONS,
    LONG_MIN_TURNS,
    subdued_turns,
    subsets,
)
from speechbrain_dpm.metrics import unweighted_accuracy


def speaker_of(utt_id):
    """IEMOCAP turn names end in ``_<F|M><index>``: the speaker's side."""
    return utt_id.rsplit("_", 1)[1][0]


def fuse(rows, weight, decay=0.5):
    """Predictions after late fusion with the speaker's earlier outputs.

    Arguments
    ---------
    rows : list of dict
        One run's predictions (``probs``), in dialogue order.
    weight : float
        Weight of the speaker's history (0: the run's own predictions).
    decay : float
        Running average: history = decay * history + (1 - decay) * now.

    Returns
    -------
    list of int
        Fused predictions.

    Example
    -------
    >>> rows = [
    ...     {"dialogue_id": "d", "utt_id": "d_F000", "probs": [0.9, 0.1]},
    ...     {"dialogue_id": "d", "utt_id": "d_F001", "probs": [0.4, 0.6]},
    ... ]
    >>> fuse(rows, 0.0), fuse(rows, 1.0)
    ([0, 1], [0, 0])
    """
    history, out = {}, []
    for row in rows:
        key = (row["dialogue_id"], speaker_of(row["utt_id"]))
        logp = np.log(np.clip(row["probs"], 1e-6, 1.0))
        past = history.get(key)
        score = logp if past is None else logp + weight * past
        out.append(int(np.argmax(score)))
        history[key] = (
            logp if past is None else decay * past + (1 - decay) * logp
        )
    return out


def carry_over(rows, neutral=0):
    """Predictions after the carry-over rule: a turn read as neutral takes
    the class the same speaker's previous turn was read as.

    A subdued turn (``synth``'s ``subdued_share``) sounds neutral while its
    label is the speaker's persisting emotion; this rule is what a model
    that uses its context for such turns would at least have to learn.
    Only the run's own reads are used, never gold labels.

    Arguments
    ---------
    rows : list of dict
        One run's predictions (``probs``), in dialogue order.
    neutral : int
        Index of the neutral class.

    Returns
    -------
    list of int
        Predictions after the rule.

    Example
    -------
    >>> rows = [
    ...     {"dialogue_id": "d", "utt_id": "d_F000", "probs": [0.2, 0.8]},
    ...     {"dialogue_id": "d", "utt_id": "d_M000", "probs": [0.9, 0.1]},
    ...     {"dialogue_id": "d", "utt_id": "d_F001", "probs": [0.7, 0.3]},
    ... ]
    >>> carry_over(rows)
    [1, 0, 1]
    """
    last, out = {}, []
    for row in rows:
        key = (row["dialogue_id"], speaker_of(row["utt_id"]))
        read = int(np.argmax(row["probs"]))
        out.append(last[key] if read == neutral and key in last else read)
        last[key] = read
    return out


def dialogue_order(run_dir, row):
    """A run's test predictions of one row, in dialogue order (``None`` if
    that row was not run)."""
    path = Path(run_dir) / "results" / f"test_predictions_{row}.jsonl"
    if not path.exists():
        return None
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return sorted(rows, key=lambda r: (r["dialogue_id"], r["position"]))


def carry_over_table(out, runs, seeds, subdued):
    """UA before → after :func:`carry_over`, whole test split and its
    subdued / clear turns, mean over seeds."""
    table = {}
    for run_row in runs:
        run, row = run_row.split("/")
        scores = {}
        for seed in seeds:
            rows = dialogue_order(run_dir(out, run, seed), row)
            if rows is None:
                continue
            carried = dict(zip([r["utt_id"] for r in rows], carry_over(rows)))
            # The experiment's own split into all / subdued / clear turns.
            for part, part_rows in subsets(rows, subdued).items():
                if part not in ("all", "subdued", "clear") or not part_rows:
                    continue
                y = [r["label"] for r in part_rows]
                read = [int(np.argmax(r["probs"])) for r in part_rows]
                after = [carried[r["utt_id"]] for r in part_rows]
                for name, pred in (("read", read), ("carried", after)):
                    scores.setdefault((part, name), []).append(
                        unweighted_accuracy(y, pred)
                    )
        if scores:
            table[run_row] = {k: float(np.mean(v)) for k, v in scores.items()}
    return table


def is_long(rows):
    """Mask of the turns that belong to long dialogues."""
    size = {}
    for r in rows:
        size[r["dialogue_id"]] = size.get(r["dialogue_id"], 0) + 1
    return np.array([size[r["dialogue_id"]] >= LONG_MIN_TURNS for r in rows])


def fusion_table(out, runs, seeds, weights):
    """Long-dialogue UA of each run/row after late fusion, mean over seeds."""
    table = {}
    for run_row in runs:
        run, row = run_row.split("/")
        scores = {w: [] for w in weights}
        for seed in seeds:
            rows = dialogue_order(run_dir(out, run, seed), row)
            if rows is None:
                continue
            long_ = [r for r, keep in zip(rows, is_long(rows)) if keep]
            labels = [r["label"] for r in long_]
            for w in weights:
                scores[w].append(unweighted_accuracy(labels, fuse(long_, w)))
        if scores[weights[0]]:
            table[run_row] = {w: float(np.mean(v)) for w, v in scores.items()}
    return table


def pooled_utterances(manifest):
    """(dialogue, speaker, [mean, std] of the frames, label), in order."""
    with open(manifest) as f:
        entries = json.load(f)
    order = sorted(
        entries.values(), key=lambda e: (e["dialogue_id"], e["turn_index"])
    )
    rows = []
    for entry in order:
        feats = torch.load(entry["units"], map_location="cpu")["feats"].float()
        stats = torch.cat([feats.mean(0), feats.std(0)]).numpy()
        rows.append(
            (
                entry["dialogue_id"],
                entry["speaker"],
                stats,
                EMOTIONS.index(entry["emo"]),
            )
        )
    return rows


def normalised(rows, mode):
    """Features per ``mode``: raw | past (causal) | dialogue (non-causal)."""
    whole = {}
    for dia, spk, stats, _ in rows:
        whole.setdefault((dia, spk), []).append(stats)
    whole = {k: np.mean(v, 0) for k, v in whole.items()}
    seen, x = {}, []
    for dia, spk, stats, _ in rows:
        key = (dia, spk)
        if mode == "raw":
            x.append(stats)
        elif mode == "past":
            past = seen.get(key)
            x.append(stats - (np.mean(past, 0) if past else stats))
        else:
            x.append(stats - whole[key])
        seen.setdefault(key, []).append(stats)
    return np.array(x), np.array([r[3] for r in rows])


def probe_table(save_folder):
    """Speaker-disjoint UA of the linear probe, per normalisation."""
    train = pooled_utterances(Path(save_folder) / "train_units.json")
    test = pooled_utterances(Path(save_folder) / "test_units.json")
    size = {}
    for dia, *_ in test:
        size[dia] = size.get(dia, 0) + 1
    long_ = np.array([size[dia] >= LONG_MIN_TURNS for dia, *_ in test])
    table = {}
    for mode in ("raw", "past", "dialogue"):
        x_tr, y_tr = normalised(train, mode)
        x_te, y_te = normalised(test, mode)
        scaler = StandardScaler().fit(x_tr)
        clf = LogisticRegression(
            C=0.1, max_iter=3000, class_weight="balanced"
        ).fit(scaler.transform(x_tr), y_tr)
        pred = clf.predict(scaler.transform(x_te))
        table[mode] = {
            part: unweighted_accuracy(y_te[mask], pred[mask])
            for part, mask in (("long", long_), ("ordinary", ~long_))
        }
    return table


def main(argv=None):
    """Prints both tables (Markdown)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output_folder", default="results/long_iemocap")
    p.add_argument(
        "--data_folder",
        default="data/long_iemocap",
        help="the corpus (its SYNTHETIC_meta.json flags subdued turns)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument(
        "--runs",
        nargs="+",
        default=["classifier/utterance", "plain/utterance", "plain/sliding"],
    )
    args = p.parse_args(argv)
    out = Path(args.output_folder)
    weights = (0.0, 0.5, 1.0, 2.0)
    fusion = fusion_table(out, args.runs, args.seeds, weights)
    print("Late fusion with the speaker's earlier outputs, long dialogues, UA")
    print("| run/row | " + " | ".join(f"w = {w}" for w in weights) + " |")
    print("|---" * (len(weights) + 1) + "|")
    for key, row in fusion.items():
        print(
            f"| {key} | " + " | ".join(f"{row[w]:.1f}" for w in weights) + " |"
        )
    subdued = subdued_turns(args.data_folder)
    carried = carry_over_table(out, args.runs, args.seeds, subdued)
    print("\nCarry-over rule (neutral read -> speaker's previous read), UA")
    parts = [
        p
        for p in ("all", "subdued", "clear")
        if any((p, "read") in r for r in carried.values())
    ]
    print(
        "| run/row | "
        + " | ".join(f"{p}: read → carried" for p in parts)
        + " |"
    )
    print("|---" * (len(parts) + 1) + "|")
    for key, row in carried.items():
        cells = [
            f"{row[(p, 'read')]:.1f} → {row[(p, 'carried')]:.1f}" for p in parts
        ]
        print(f"| {key} | " + " | ".join(cells) + " |")
    seed = args.seeds[0]
    # Any run of the seed holds the split's units manifests.
    saves = sorted(out.glob(f"*/{seed}/save/train_units.json"))
    if not saves:
        print(f"\nNo save/train_units.json under {out}/*/{seed}: no probe")
        return {"fusion": fusion, "carry_over": carried, "probe": None}
    probe = probe_table(saves[0].parent)
    print("\nLinear probe on pooled continuous features, UA")
    print("| features | long | ordinary |\n|---|---|---|")
    for mode, row in probe.items():
        print(f"| {mode} | {row['long']:.1f} | {row['ordinary']:.1f} |")
    return {"fusion": fusion, "carry_over": carried, "probe": probe}


if __name__ == "__main__":
    main()

"""Emotion-recognition metrics (scikit-learn) and their plots (matplotlib).

WA is plain accuracy, UA the unweighted mean of per-class recalls
(balanced accuracy); both are reported because papers often call either one
"accuracy". WF1 is the support-weighted F1 (MELD's usual metric).

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import json
import os

import numpy as np


def classification_metrics(y_true, y_pred, labels):
    """WA, UA, weighted and macro F1, per-class scores and the confusion.

    Arguments
    ---------
    y_true : list of int
        Gold class indices.
    y_pred : list of int
        Predicted class indices.
    labels : list of str
        Class names, by index.

    Returns
    -------
    dict
        ``WA``, ``UA``, ``WF1``, ``macro_F1`` (percent), ``per_class``
        (name → precision, recall, f1, support), ``confusion`` (rows: gold),
        ``n``.

    Example
    -------
    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], ["neu", "hap"])
    >>> m["WA"], m["UA"]
    (75.0, 75.0)
    >>> m["confusion"]
    [[1, 1], [0, 2]]
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    index = list(range(len(labels)))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=index, zero_division=0
    )
    present = [i for i in index if support[i] > 0]
    return {
        "n": len(y_true),
        "WA": 100 * accuracy_score(y_true, y_pred),
        "UA": unweighted_accuracy(y_true, y_pred),
        "WF1": 100
        * f1_score(
            y_true, y_pred, labels=index, average="weighted", zero_division=0
        ),
        "macro_F1": 100
        * f1_score(
            y_true, y_pred, labels=present, average="macro", zero_division=0
        ),
        "per_class": {
            name: {
                "precision": 100 * prec[i],
                "recall": 100 * rec[i],
                "f1": 100 * f1[i],
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=index).tolist(),
    }


def unweighted_accuracy(y_true, y_pred):
    """UA: the mean of the per-class recalls, in percent.

    Only the classes present in the gold labels count: an absent class has
    no recall to average. Plain numpy, so that a bootstrap can call it
    thousands of times.

    Arguments
    ---------
    y_true : list of int
        Gold class indices.
    y_pred : list of int
        Predicted class indices.

    Returns
    -------
    float
        UA in percent.

    Example
    -------
    >>> # class 0: 1 of 2 right, class 1: 2 of 2, class 2 absent from gold
    >>> unweighted_accuracy([0, 0, 1, 1], [0, 2, 1, 1])
    75.0
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]
    return 100.0 * float(np.mean(recalls))


def consecutive_blocks(groups, positions, size):
    """Indices grouped in blocks of ``size`` consecutive positions of one
    group (e.g. 20 consecutive turns of one dialogue): the resampling unit
    of :func:`paired_bootstrap_ua`, since emotions persist across turns.

    Arguments
    ---------
    groups : list
        The group of each item (e.g. its dialogue id).
    positions : list of int
        The position of each item in its group (e.g. its turn index).
    size : int
        Positions per block.

    Returns
    -------
    list of list of int
        The blocks, in order of first appearance.

    Example
    -------
    >>> consecutive_blocks(["a", "a", "a", "b"], [0, 1, 2, 0], size=2)
    [[0, 1], [2], [3]]
    """
    blocks = {}
    for i, (group, position) in enumerate(zip(groups, positions)):
        blocks.setdefault((group, position // size), []).append(i)
    return list(blocks.values())


def paired_bootstrap_ua(samples, n_boot=2000, seed=0, level=95.0):
    """Confidence interval of a mean UA difference, by block bootstrap.

    Each sample (e.g. one training seed) holds the gold labels, the
    predictions of two systems on the same items and the blocks of items
    that are resampled together (:func:`consecutive_blocks`). The point
    estimate is the mean over samples of UA(a) - UA(b); each replicate
    resamples the blocks of every sample with replacement.

    Arguments
    ---------
    samples : list of tuple
        ``(y_true, pred_a, pred_b, blocks)`` per sample.
    n_boot : int
        Number of replicates.
    seed : int
        Seed of the resampling.
    level : float
        Coverage of the interval, in percent.

    Returns
    -------
    tuple of float
        ``(difference, low, high)``, in UA points.

    Example
    -------
    >>> y = [0, 1, 0, 1, 0, 1]
    >>> blocks = consecutive_blocks(["d"] * 6, range(6), size=2)
    >>> sample = (y, y, [0, 0, 0, 0, 0, 0], blocks)
    >>> diff, low, high = paired_bootstrap_ua([sample], n_boot=200)
    >>> diff, low <= diff <= high
    (50.0, True)
    """
    rng = np.random.default_rng(seed)
    prepared = [
        (np.asarray(y), np.asarray(a), np.asarray(b), blocks)
        for y, a, b, blocks in samples
    ]
    point = np.mean(
        [
            unweighted_accuracy(y, a) - unweighted_accuracy(y, b)
            for y, a, b, _ in prepared
        ]
    )
    replicates = []
    for _ in range(n_boot):
        diffs = []
        for y, a, b, blocks in prepared:
            pick = rng.integers(0, len(blocks), len(blocks))
            idx = np.concatenate([blocks[k] for k in pick])
            diffs.append(
                unweighted_accuracy(y[idx], a[idx])
                - unweighted_accuracy(y[idx], b[idx])
            )
        replicates.append(np.mean(diffs))
    tail = (100.0 - level) / 2
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(point), float(low), float(high)


def accuracy_by_position(y_true, y_pred, positions, edges=(0, 5, 10, 20, 50)):
    """Accuracy of the utterances grouped by their turn index.

    Arguments
    ---------
    y_true : list of int
        Gold class indices.
    y_pred : list of int
        Predicted class indices.
    positions : list of int
        0-based turn index of each utterance in its dialogue.
    edges : tuple of int
        Lower edges of the buckets; the last bucket is open.

    Returns
    -------
    dict
        bucket name (e.g. ``"5-9"``, ``"50+"``) → ``{"acc", "n"}``.

    Example
    -------
    >>> accuracy_by_position([0, 1, 1], [0, 0, 1], [0, 7, 8], edges=(0, 5))
    {'0-4': {'acc': 100.0, 'n': 1}, '5+': {'acc': 50.0, 'n': 2}}
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    positions = np.asarray(positions)
    out = {}
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        sel = positions >= low
        if high is not None:
            sel &= positions < high
        name = f"{low}-{high - 1}" if high is not None else f"{low}+"
        if sel.any():
            acc = 100 * float((y_true[sel] == y_pred[sel]).mean())
            out[name] = {"acc": acc, "n": int(sel.sum())}
    return out


def results_table(results, columns=("WA", "UA", "WF1", "macro_F1")):
    """Formats ``{name: metrics}`` as a Markdown table.

    Arguments
    ---------
    results : dict
        Row name → metrics dict (from ``classification_metrics``).
    columns : tuple of str
        The metrics shown.

    Returns
    -------
    str
        The table.

    Example
    -------
    >>> print(results_table({"sliding": {"WA": 50.0, "UA": 40.0}}, ("WA",)))
    | strategy | WA |
    |---|---|
    | sliding | 50.00 |
    """
    lines = [
        "| strategy | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, metrics in results.items():
        cells = [f"{metrics[c]:.2f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results, out_dir, labels, title="results"):
    """Writes results as JSON, CSV, Markdown and PNG plots.

    Arguments
    ---------
    results : dict
        Strategy name → metrics (``classification_metrics`` plus an optional
        ``by_position`` from ``accuracy_by_position``).
    out_dir : str
        Output folder (created).
    labels : list of str
        Class names.
    title : str
        Prefix of the file names.

    Returns
    -------
    dict
        Paths of the files written.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "json": os.path.join(out_dir, f"{title}.json"),
        "csv": os.path.join(out_dir, f"{title}.csv"),
        "md": os.path.join(out_dir, f"{title}.md"),
    }
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    with open(paths["csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy", "n", "WA", "UA", "WF1", "macro_F1"])
        for name, m in results.items():
            writer.writerow(
                [name, m["n"]]
                + [f"{m[k]:.4f}" for k in ("WA", "UA", "WF1", "macro_F1")]
            )
    with open(paths["md"], "w", encoding="utf-8") as f:
        f.write(results_table(results) + "\n")
    for name, m in results.items():
        path = os.path.join(out_dir, f"{title}_confusion_{name}.png")
        plot_confusion(m["confusion"], labels, path, title=name)
        paths[f"confusion_{name}"] = path
    if any(m.get("diagnostics") for m in results.values()):
        path = os.path.join(out_dir, f"{title}_memory_diagnostics.png")
        plot_diagnostics(results, path)
        paths["diagnostics"] = path
    if any("by_position" in m for m in results.values()):
        path = os.path.join(out_dir, f"{title}_by_position.png")
        plot_accuracy_by_position(results, path)
        paths["by_position"] = path
    return paths


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion, labels, path, title=""):
    """Saves a confusion matrix (rows: gold, columns: predicted) as PNG.

    Arguments
    ---------
    confusion : list of list of int
        The counts.
    labels : list of str
        Class names.
    path : str
        Output PNG.
    title : str
        Plot title.
    """
    plt = _pyplot()
    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, len(labels) + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_accuracy_by_position(results, path):
    """Saves accuracy by dialogue position, one line per strategy, as PNG.

    Arguments
    ---------
    results : dict
        Strategy name → metrics with a ``by_position`` entry.
    path : str
        Output PNG.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in results.items():
        buckets = m.get("by_position")
        if not buckets:
            continue
        names = list(buckets)
        ax.plot(
            names, [buckets[b]["acc"] for b in names], marker="o", label=name
        )
    ax.set_xlabel("turn index in the dialogue")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_diagnostics(results, path):
    """Saves the memory diagnostics (transfer ratio and read-out drift by
    dialogue position) of every strategy that has them, as PNG.

    Arguments
    ---------
    results : dict
        Strategy name → metrics with a ``diagnostics`` entry (from
        ``speechbrain_dpm.memory.summarize_diagnostics``).
    path : str
        Output PNG.
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, m in results.items():
        diag = m.get("diagnostics")
        if not diag:
            continue
        buckets = [b for b in diag["transfer"] if b != "all"]
        ratios = [diag["transfer"][b]["ratio"] for b in buckets]
        left.plot(
            buckets,
            [r if r is not None else float("nan") for r in ratios],
            marker="o",
            label=name,
        )
        drift = [diag["drift"].get(b) for b in buckets]
        right.plot(
            buckets,
            [d if d is not None else float("nan") for d in drift],
            marker="o",
            label=name,
        )
    left.axhline(1.0, color="grey", lw=0.8, ls="--")
    left.set_title("memory transfer: loss with / without memory")
    left.set_xlabel("turn index bucket")
    right.set_title("read-out drift per write (total variation)")
    right.set_xlabel("turn index bucket")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

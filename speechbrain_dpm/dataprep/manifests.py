"""JSON manifests of the prepare scripts: written atomically, summarised.

Authors
 * speechbrain_dpm contributors 2026
"""

import json
import os
from collections import Counter

SPLITS = ("train", "valid", "test")


def write_manifest(data, path):
    """Writes a JSON manifest atomically (temporary file + rename).

    Arguments
    ---------
    data : dict
        ``{utterance_id: {field: value}}``.
    path : str
        The output JSON file; its folder is created if needed.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> path = str(tmp / "m" / "train.json")
    >>> write_manifest({"u1": {"emo": "neu"}}, path)
    >>> import json; json.load(open(path))
    {'u1': {'emo': 'neu'}}
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def summarize_splits(manifests):
    """Counts dialogues, utterances, hours and classes per split.

    Arguments
    ---------
    manifests : dict
        ``{split_name: {utterance_id: entry}}`` with entries holding
        ``dialogue_id``, ``emo`` and ``length``.

    Returns
    -------
    dict
        ``{split_name: {"dialogues", "utterances", "hours", "classes"}}``.

    Example
    -------
    >>> m = {"train": {"a": {"dialogue_id": "d", "emo": "neu", "length": 36}}}
    >>> summarize_splits(m)["train"]["classes"]
    {'neu': 1}
    """
    out = {}
    for split, entries in manifests.items():
        classes = Counter(e["emo"] for e in entries.values())
        out[split] = {
            "dialogues": len({e["dialogue_id"] for e in entries.values()}),
            "utterances": len(entries),
            "hours": round(
                sum(e["length"] for e in entries.values()) / 3600, 3
            ),
            "classes": dict(sorted(classes.items())),
        }
    return out


def format_summary(name, summary):
    """Formats a preparation summary as text (one line per split).

    Arguments
    ---------
    name : str
        The corpus name.
    summary : dict
        With ``splits`` (see :func:`summarize_splits`), ``skipped`` and
        ``notes`` (reason → count).

    Returns
    -------
    str
        The formatted summary.

    Example
    -------
    >>> s = {"splits": {"test": {"dialogues": 1, "utterances": 2,
    ...      "hours": 0.0, "classes": {"neu": 2}}}, "skipped": {}, "notes": {}}
    >>> print(format_summary("X", s))
    X preparation summary:
      test: 1 dialogues, 2 utterances, 0.0 h, classes neu=2
      skipped: none
    """
    lines = [f"{name} preparation summary:"]
    for split, s in summary["splits"].items():
        classes = " ".join(f"{k}={v}" for k, v in s["classes"].items())
        lines.append(
            f"  {split}: {s['dialogues']} dialogues, {s['utterances']} "
            f"utterances, {s['hours']} h, classes {classes or '-'}"
        )
    skipped = summary.get("skipped", {})
    if skipped:
        lines.append(
            f"  skipped {sum(skipped.values())}: "
            + ", ".join(f"{k}={v}" for k, v in skipped.items())
        )
    else:
        lines.append("  skipped: none")
    notes = summary.get("notes", {})
    if notes:
        lines.append(
            "  notes: " + ", ".join(f"{k}={v}" for k, v in notes.items())
        )
    return "\n".join(lines)

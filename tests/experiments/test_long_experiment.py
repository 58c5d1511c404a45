"""The long-conversation experiment: its run grid and job order, the
pooling (subsets, UA, paired CIs) and the context probes."""

import json
from pathlib import Path

import numpy as np
import pytest

from experiments import context_probes as probes
from experiments import long_conversations as exp
from experiments.grid import load_grid, run_order
from experiments.summary import (
    LONG_MIN_TURNS,
    paired_ci,
    subdued_turns,
    subsets,
    summarize,
)
from speechbrain_dpm.metrics import unweighted_accuracy as ua

GRID = load_grid()


def rows(dialogue, labels, preds):
    return [
        {
            "dialogue_id": dialogue,
            "position": i,
            "utt_id": f"{dialogue}_{i}",
            "label": y,
            "pred": p,
        }
        for i, (y, p) in enumerate(zip(labels, preds))
    ]


def test_subsets_split_long_from_ordinary():
    long_ = rows("L", [0] * LONG_MIN_TURNS, [0] * LONG_MIN_TURNS)
    short = rows("S", [1] * 10, [1] * 10)
    parts = subsets(short + long_)
    assert len(parts["long"]) == LONG_MIN_TURNS
    assert {r["dialogue_id"] for r in parts["ordinary"]} == {"S"}


def test_subsets_split_subdued_turns_when_the_corpus_has_them(tmp_path):
    short = rows("S", [1] * 10, [1] * 10)
    assert "subdued" not in subsets(short)
    meta = {
        "utterances": {
            "S_1": {"subdued": True},
            "S_2": {"subdued": False},
            "S_3": {},
        }
    }
    (tmp_path / "SYNTHETIC_meta.json").write_text(json.dumps(meta))
    flagged = subdued_turns(tmp_path)
    assert flagged == {"S_1"}
    assert subdued_turns(tmp_path / "absent") == frozenset()
    parts = subsets(short, flagged)
    assert [r["utt_id"] for r in parts["subdued"]] == ["S_1"]
    assert len(parts["clear"]) == 9


def test_ua_is_mean_recall_over_present_classes():
    # class 0: 1/2 right, class 1: 2/2 right, class 2 absent -> 75
    assert ua([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(75.0)


def test_paired_ci():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200).tolist()
    good = [y if rng.random() < 0.8 else (y + 1) % 4 for y in labels]
    bad = [y if rng.random() < 0.4 else (y + 1) % 4 for y in labels]
    a, b = rows("L", labels, good), rows("L", labels, bad)
    point, low, high = paired_ci([(a, b)], n_boot=300)
    expected = ua(labels, good) - ua(labels, bad)
    assert point == pytest.approx(expected)
    assert 0 < low < point < high
    # A row against itself: exactly zero, no spread.
    assert paired_ci([(a, a)], n_boot=50) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "run",
    [
        "placements",
        "placements_b",
        "sweeps",
        "sweeps_b",
        "sweeps_c",
        "sweeps_d",
        "sweeps_e",
        "sweeps_f",
        "sweeps_g",
    ],
)
def test_read_only_runs_read_the_plain_model_in_their_own_folder(run):
    args = exp.parse_args(["--output_folder", "out", "--runs", run])
    cmd = exp.recipe_command(args, run, 2)
    opts = dict(
        a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a
    )
    assert opts["output_folder"] == str(Path("out") / run / "2")
    assert opts["number_of_epochs"] == "0"
    assert opts["init_from"] == str(Path("out/plain/2/model/sllm.ckpt"))
    rows = json.loads(opts["test_strategies"])
    # The YAML's own rows are switched off; only the run's rows are read.
    assert {k for k, v in rows.items() if v is not False} == set(
        GRID.runs[run].rows
    )


def test_feedback_init_runs_the_two_stage_recipe_yaml():
    # The recommended recipe: its stage 1 (the classifier) and stage 2
    # (emotion feedback from stage 1's tensors) in one train.py call of
    # hparams/dpm_feedback.yaml, no option bundle of its own.
    args = exp.parse_args(["--output_folder", "out", "--runs", "feedback_init"])
    cmd = exp.recipe_command(args, "feedback_init", 3)
    assert Path(cmd[2]).name == "dpm_feedback.yaml"
    opts = dict(
        a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a
    )
    assert "init_from" not in opts
    assert "emotion_feedback" not in opts
    assert int(opts["number_of_epochs"]) > 0
    assert opts["classifier_epochs"] == opts["number_of_epochs"]
    assert GRID.runs["feedback_init"].read_rows[0] == "classifier"


def test_runs_start_after_the_run_they_start_from(tmp_path):
    # --runs dpm_aware plain: plain first (dpm_aware starts from its model).
    args = exp.parse_args(
        ["--output_folder", str(tmp_path), "--runs", "dpm_aware", "plain"]
    )
    jobs = exp.job_list(args, GRID)
    assert [run for run, _ in jobs] == ["plain"] * 3 + ["dpm_aware"] * 3
    assert run_order(GRID, ["sweeps", "classifier", "plain"]) == [
        "plain",
        "sweeps",
        "classifier",
    ]
    # A run whose source model is neither there nor asked for fails early.
    args = exp.parse_args(
        ["--output_folder", str(tmp_path), "--runs", "sweeps"]
    )
    with pytest.raises(SystemExit, match="add plain to --runs"):
        exp.job_list(args, GRID)


def test_grid_rejects_unknown_references(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_text(
        "default_runs: [a]\n"
        "runs:\n  a: {yaml: dpm.yaml, rows: {sliding: {}}, init_from: b}\n"
        "comparisons: []\n"
    )
    with pytest.raises(ValueError, match="no run 'b'"):
        load_grid(bad)


def test_late_fusion_uses_the_same_speakers_history_only():
    def row(utt, probs):
        return {"dialogue_id": "d", "utt_id": f"d_{utt}", "probs": probs}

    rows = [row("F000", [0.9, 0.1]), row("M000", [0.1, 0.9])]
    rows.append(row("F001", [0.4, 0.6]))
    assert probes.fuse(rows, 0.0) == [0, 1, 1]
    # F's own earlier turn (class 0) outweighs the other speaker's.
    assert probes.fuse(rows, 1.0) == [0, 1, 0]


def test_speaker_normalisation_modes():
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    rows = [("d", "F", a, 0), ("d", "F", b, 1), ("d", "M", b, 2)]
    x, y = probes.normalised(rows, "raw")
    assert np.allclose(x, [a, b, b]) and y.tolist() == [0, 1, 2]
    x, _ = probes.normalised(rows, "past")  # causal: earlier turns only
    assert np.allclose(x, [[0, 0], b - a, [0, 0]])
    x, _ = probes.normalised(rows, "dialogue")  # all the speaker's turns
    assert np.allclose(x, [a - (a + b) / 2, b - (a + b) / 2, [0, 0]])


def test_carry_over_rule_reads_only_the_same_speakers_own_reads():
    def row(utt, probs):
        return {"dialogue_id": "d", "utt_id": f"d_{utt}", "probs": probs}

    rows = [row("F000", [0.1, 0.1, 0.8]), row("M000", [0.1, 0.9, 0.0])]
    rows += [row("F001", [0.9, 0.1, 0.0]), row("F002", [0.9, 0.1, 0.0])]
    # F001 reads neutral and takes F000's read (2), not M000's (1); F002
    # takes F001's own read (neutral), not the carried value.
    assert probes.carry_over(rows) == [2, 1, 2, 0]
    assert probes.carry_over(rows[1:2]) == [1]
    assert probes.carry_over([row("F000", [0.9, 0.1])]) == [0]


def test_probes_without_any_run_say_so(tmp_path, capsys):
    out = probes.main(
        ["--output_folder", str(tmp_path), "--data_folder", str(tmp_path)]
    )
    assert out == {"fusion": {}, "carry_over": {}, "probe": None}
    assert "no probe" in capsys.readouterr().out


def test_summary_of_a_corpus_without_subdued_turns(tmp_path):
    short, long_ = [0, 1, 2, 3] * 3, [0, 1, 2, 3] * (LONG_MIN_TURNS // 4)
    for run, row in (("classifier", "utterance"), ("plain", "sliding")):
        folder = tmp_path / run / "1" / "results"
        folder.mkdir(parents=True)
        with open(folder / f"test_predictions_{row}.jsonl", "w") as f:
            for dialogue, labels in (("S", short), ("L", long_)):
                for r in rows(dialogue, labels, labels[::-1]):
                    f.write(json.dumps(r) + "\n")
    summary = summarize(GRID, tmp_path, tmp_path / "no_corpus", [1])
    assert set(summary["table"]["plain/sliding"]) == {
        "seeds",
        "all",
        "long",
        "ordinary",
    }
    diff = summary["comparisons"]["plain/sliding - classifier/utterance (all)"]
    assert diff["UA_diff"] == 0.0
    assert (tmp_path / "summary.md").exists()

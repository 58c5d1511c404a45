"""The long-conversation experiment's pooling: subsets, UA, paired CIs."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "recipes"
    / "IEMOCAP"
    / "long_conversations.py"
)


@pytest.fixture(scope="module")
def exp():
    spec = importlib.util.spec_from_file_location("long_conv", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_subsets_split_long_from_ordinary(exp):
    long_ = rows("L", [0] * exp.LONG_MIN_TURNS, [0] * exp.LONG_MIN_TURNS)
    short = rows("S", [1] * 10, [1] * 10)
    parts = exp.subsets(short + long_)
    assert len(parts["long"]) == exp.LONG_MIN_TURNS
    assert {r["dialogue_id"] for r in parts["ordinary"]} == {"S"}


def test_subsets_split_subdued_turns_when_the_corpus_has_them(exp, tmp_path):
    short = rows("S", [1] * 10, [1] * 10)
    assert "subdued" not in exp.subsets(short)
    meta = {
        "utterances": {
            "S_1": {"subdued": True},
            "S_2": {"subdued": False},
            "S_3": {},
        }
    }
    (tmp_path / "SYNTHETIC_meta.json").write_text(json.dumps(meta))
    flagged = exp.subdued_turns(tmp_path)
    assert flagged == {"S_1"}
    assert exp.subdued_turns(tmp_path / "absent") == frozenset()
    parts = exp.subsets(short, flagged)
    assert [r["utt_id"] for r in parts["subdued"]] == ["S_1"]
    assert len(parts["clear"]) == 9


def test_ua_is_mean_recall_over_present_classes(exp):
    # class 0: 1/2 right, class 1: 2/2 right, class 2 absent -> 75
    assert exp.ua([0, 0, 1, 1], [0, 1, 1, 1], 3) == pytest.approx(75.0)


def test_paired_ci(exp):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200).tolist()
    good = [y if rng.random() < 0.8 else (y + 1) % 4 for y in labels]
    bad = [y if rng.random() < 0.4 else (y + 1) % 4 for y in labels]
    a, b = rows("L", labels, good), rows("L", labels, bad)
    point, low, high = exp.paired_ci([(a, b)], 4, n_boot=300)
    expected = exp.ua(labels, good, 4) - exp.ua(labels, bad, 4)
    assert point == pytest.approx(expected)
    assert 0 < low < point < high
    # A row against itself: exactly zero, no spread.
    assert exp.paired_ci([(a, a)], 4, n_boot=50) == (0.0, 0.0, 0.0)


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
def test_read_only_runs_read_the_plain_model_in_their_own_folder(exp, run):
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
        exp.RUNS[run][2]
    )


def test_feedback_init_starts_from_the_classifier_of_its_seed(exp):
    args = exp.parse_args(["--output_folder", "out", "--runs", "feedback_init"])
    cmd = exp.recipe_command(args, "feedback_init", 3)
    opts = dict(
        a[2:].split("=", 1) for a in cmd if a.startswith("--") and "=" in a
    )
    assert opts["init_from"] == str(Path("out/classifier/3/model/sllm.ckpt"))
    assert opts["emotion_feedback"] == "True"
    assert int(opts["number_of_epochs"]) > 0


@pytest.fixture(scope="module")
def probes():
    path = SCRIPT.parent / "context_probes.py"
    spec = importlib.util.spec_from_file_location("context_probes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_late_fusion_uses_the_same_speakers_history_only(probes):
    def row(utt, probs):
        return {"dialogue_id": "d", "utt_id": f"d_{utt}", "probs": probs}

    rows = [row("F000", [0.9, 0.1]), row("M000", [0.1, 0.9])]
    rows.append(row("F001", [0.4, 0.6]))
    assert probes.fuse(rows, 0.0) == [0, 1, 1]
    # F's own earlier turn (class 0) outweighs the other speaker's.
    assert probes.fuse(rows, 1.0) == [0, 1, 0]


def test_speaker_normalisation_modes(probes):
    a, b = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    rows = [("d", "F", a, 0), ("d", "F", b, 1), ("d", "M", b, 2)]
    x, y = probes.normalised(rows, "raw")
    assert np.allclose(x, [a, b, b]) and y.tolist() == [0, 1, 2]
    x, _ = probes.normalised(rows, "past")  # causal: earlier turns only
    assert np.allclose(x, [[0, 0], b - a, [0, 0]])
    x, _ = probes.normalised(rows, "dialogue")  # all the speaker's turns
    assert np.allclose(x, [a - (a + b) / 2, b - (a + b) / 2, [0, 0]])


def test_carry_over_rule_reads_only_the_same_speakers_own_reads(probes):
    def row(utt, probs):
        return {"dialogue_id": "d", "utt_id": f"d_{utt}", "probs": probs}

    rows = [row("F000", [0.1, 0.1, 0.8]), row("M000", [0.1, 0.9, 0.0])]
    rows += [row("F001", [0.9, 0.1, 0.0]), row("F002", [0.9, 0.1, 0.0])]
    # F001 reads neutral and takes F000's read (2), not M000's (1); F002
    # takes F001's own read (neutral), not the carried value.
    assert probes.carry_over(rows) == [2, 1, 2, 0]
    assert probes.carry_over(rows[1:2]) == [1]
    assert probes.carry_over([row("F000", [0.9, 0.1])]) == [0]


def test_probes_without_any_run_say_so(probes, tmp_path, capsys):
    out = probes.main(
        ["--output_folder", str(tmp_path), "--data_folder", str(tmp_path)]
    )
    assert out == {"fusion": {}, "carry_over": {}, "probe": None}
    assert "no probe" in capsys.readouterr().out

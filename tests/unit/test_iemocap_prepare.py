"""Tests of recipes/IEMOCAP/iemocap_prepare.py on a tiny fake corpus.

Authors
 * speechbrain_dpm contributors 2026
"""

import importlib.util
import json
import logging
import os
import pathlib

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


iemocap_prepare = _load(
    "iemocap_prepare", ROOT / "recipes" / "IEMOCAP" / "iemocap_prepare.py"
)
prepare_iemocap = iemocap_prepare.prepare_iemocap

# (turn suffix, start, end, label), deliberately not in start-time order.
TURNS = [
    ("F000", 1.0, 2.0, "neu"),
    ("M000", 2.5, 3.5, "exc"),
    ("F001", 0.2, 0.8, "ang"),
    ("M001", 4.0, 5.0, "sad"),
    ("F002", 5.5, 6.0, "fru"),
    ("M002", 6.5, 7.0, "hap"),
    ("F003", 7.5, 8.0, "sur"),
]
SR = 16000


def _noise(seconds=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(SR * seconds))).astype("float32")


def _dialogues(session):
    return [f"Ses0{session}F_impro01", f"Ses0{session}M_script01_1"]


def _eval_text(dialogue, turns):
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for suffix, start, end, label in turns:
        lines += [
            f"[{start:.4f} - {end:.4f}]\t{dialogue}_{suffix}\t{label}\t"
            "[2.5000, 2.5000, 2.5000]",
            "C-E2:\tNeutral;\t()",
            "A-E3:\tval 3; act 2; dom  2;\t()",
            "",
        ]
    return "\n".join(lines) + "\n"


def make_iemocap(root, sessions=(1, 2, 3, 4, 5)):
    """Builds a tiny IEMOCAP_full_release tree; returns its path."""
    root = pathlib.Path(root) / "IEMOCAP_full_release"
    for k in sessions:
        ses = root / f"Session{k}"
        evaldir = ses / "dialog" / "EmoEvaluation"
        transdir = ses / "dialog" / "transcriptions"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (evaldir / sub).mkdir(parents=True, exist_ok=True)
        transdir.mkdir(parents=True, exist_ok=True)
        for dialogue in _dialogues(k):
            (evaldir / f"{dialogue}.txt").write_text(
                _eval_text(dialogue, TURNS)
            )
            # Files in subfolders must be ignored: if read, this one would
            # add an unknown label and a new dialogue.
            (evaldir / "Categorical" / f"{dialogue}_e2_cat.txt").write_text(
                f"[1.0000 - 2.0000]\t{dialogue}_F000\tzzz\t[1, 1, 1]\n"
            )
            trans = ["M: (breathing)"]
            for i, (suffix, start, end, _) in enumerate(TURNS):
                if suffix == "M002":
                    continue  # no transcription for this turn
                trans.append(
                    f"{dialogue}_{suffix} [{start:08.4f}-{end:08.4f}]: "
                    f"Line {i} of {dialogue}."
                )
            trans.append(f"{dialogue}_MXX0 [009.0000-010.0000]: uh-huh")
            (transdir / f"{dialogue}.txt").write_text("\n".join(trans) + "\n")
            wavdir = ses / "sentences" / "wav" / dialogue
            wavdir.mkdir(parents=True, exist_ok=True)
            for i, (suffix, *_rest) in enumerate(TURNS):
                sf.write(
                    str(wavdir / f"{dialogue}_{suffix}.wav"),
                    _noise(seed=i),
                    SR,
                    subtype="PCM_16",
                )
    return root


def _wav(root, session, dialogue, suffix):
    return (
        root
        / f"Session{session}"
        / "sentences"
        / "wav"
        / dialogue
        / f"{dialogue}_{suffix}.wav"
    )


def _load_splits(save):
    return {
        s: json.loads((pathlib.Path(save) / f"{s}.json").read_text())
        for s in ("train", "valid", "test")
    }


@pytest.fixture
def corpus(tmp_path):
    return make_iemocap(tmp_path)


def test_manifest_fields_and_turn_order(corpus, tmp_path):
    save = tmp_path / "save"
    summary = prepare_iemocap(str(corpus), str(save))
    splits = _load_splits(save)
    test = splits["test"]
    dialogue = "Ses05F_impro01"
    utts = {k: v for k, v in test.items() if v["dialogue_id"] == dialogue}
    # 4-class: fru and sur dropped, exc merged into hap.
    assert sorted(k.rsplit("_", 1)[1] for k in utts) == [
        "F000",
        "F001",
        "M000",
        "M001",
        "M002",
    ]
    f000 = utts[f"{dialogue}_F000"]
    assert set(f000) == {
        "wav",
        "length",
        "emo",
        "dialogue_id",
        "turn_index",
        "speaker",
        "start",
        "end",
        "text",
    }
    assert os.path.isabs(f000["wav"]) and os.path.isfile(f000["wav"])
    assert f000["wav"] == str(_wav(corpus, 5, dialogue, "F000"))
    assert f000["length"] == pytest.approx(0.3, abs=1e-3)
    assert f000["emo"] == "neu"
    assert f000["start"] == pytest.approx(1.0)
    assert f000["end"] == pytest.approx(2.0)
    assert f000["text"] == f"Line 0 of {dialogue}."
    assert utts[f"{dialogue}_M000"]["emo"] == "hap"  # exc -> hap
    assert utts[f"{dialogue}_M002"]["emo"] == "hap"
    assert utts[f"{dialogue}_F001"]["emo"] == "ang"
    # Speaker is the actor of the turn, not the dialogue's lead.
    assert utts[f"{dialogue}_M000"]["speaker"] == "Ses05M"
    assert f000["speaker"] == "Ses05F"
    # Turn order by start time among kept turns: F001, F000, M000, M001, M002
    order = sorted(utts, key=lambda k: utts[k]["turn_index"])
    assert [k.rsplit("_", 1)[1] for k in order] == [
        "F001",
        "F000",
        "M000",
        "M001",
        "M002",
    ]
    assert [utts[k]["turn_index"] for k in order] == [0, 1, 2, 3, 4]
    # The turn without transcription keeps an empty text and is counted.
    assert utts[f"{dialogue}_M002"]["text"] == ""
    assert summary["notes"]["missing_text"] == 10
    # Subfolder files were ignored, drops counted per label.
    assert "unknown_label" not in summary["skipped"]
    assert summary["skipped"]["dropped_label:fru"] == 10
    assert summary["skipped"]["dropped_label:sur"] == 10
    assert summary["splits"]["test"] == {
        "dialogues": 2,
        "utterances": 10,
        "hours": pytest.approx(10 * 0.3 / 3600, abs=1e-3),
        "classes": {"ang": 2, "hap": 4, "neu": 2, "sad": 2},
    }
    # Summary on disk matches the returned one.
    stored = json.loads((save / "prepare_opts.json").read_text())
    assert stored["summary"]["skipped"] == summary["skipped"]


def test_six_classes(corpus, tmp_path):
    save = tmp_path / "save"
    summary = prepare_iemocap(str(corpus), str(save), n_classes=6)
    test = _load_splits(save)["test"]
    labels = {k.rsplit("_", 1)[1]: v["emo"] for k, v in test.items()}
    assert labels["M000"] == "exc"
    assert labels["F002"] == "fru"
    assert labels["M002"] == "hap"
    assert "F003" not in labels  # sur is not among the six classes
    assert summary["skipped"] == {"dropped_label:sur": 10}
    assert set(summary["splits"]["test"]["classes"]) == {
        "neu",
        "hap",
        "sad",
        "ang",
        "exc",
        "fru",
    }


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_loso_folds(corpus, tmp_path, fold):
    save = tmp_path / f"save{fold}"
    prepare_iemocap(str(corpus), str(save), split="loso", fold=fold)
    splits = _load_splits(save)
    valid_session = 5 if fold == 1 else fold - 1
    speakers = {
        s: {u["speaker"] for u in m.values()} for s, m in splits.items()
    }
    assert speakers["test"] == {f"Ses0{fold}F", f"Ses0{fold}M"}
    assert speakers["valid"] == {
        f"Ses0{valid_session}F",
        f"Ses0{valid_session}M",
    }
    assert len(speakers["train"]) == 6
    assert not speakers["train"] & speakers["valid"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["valid"] & speakers["test"]
    # Whole dialogues in one split, every dialogue somewhere.
    owner = {}
    for split, entries in splits.items():
        for utt_id, entry in entries.items():
            assert owner.setdefault(entry["dialogue_id"], split) == split
            assert utt_id.startswith(entry["dialogue_id"] + "_")
    assert len(owner) == 10
    sizes = {}
    for entries in splits.values():
        for entry in entries.values():
            sizes[entry["dialogue_id"]] = sizes.get(entry["dialogue_id"], 0) + 1
    assert set(sizes.values()) == {5}


def test_session5_is_loso_fold5(corpus, tmp_path):
    prepare_iemocap(str(corpus), str(tmp_path / "a"), split="session5")
    prepare_iemocap(str(corpus), str(tmp_path / "b"), split="loso", fold=5)
    assert _load_splits(tmp_path / "a") == _load_splits(tmp_path / "b")


def test_random_split_warns_and_keeps_dialogues(corpus, tmp_path, caplog):
    save = tmp_path / "save"
    with caplog.at_level(logging.WARNING):
        prepare_iemocap(str(corpus), str(save), split="random", seed=3)
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    ]
    assert any("speaker" in w and "random" in w for w in warnings)
    splits = _load_splits(save)
    owner = {}
    for split, entries in splits.items():
        for entry in entries.values():
            assert owner.setdefault(entry["dialogue_id"], split) == split
    assert len(owner) == 10
    n_dialogues = {
        s: len({e["dialogue_id"] for e in m.values()})
        for s, m in splits.items()
    }
    assert n_dialogues == {"train": 8, "valid": 1, "test": 1}
    # Same seed, same split.
    prepare_iemocap(str(corpus), str(tmp_path / "again"), "random", seed=3)
    assert _load_splits(tmp_path / "again") == splits


def test_idempotent_and_reprepares_on_change(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_iemocap(str(corpus), str(save))
    paths = [save / f"{s}.json" for s in ("train", "valid", "test")]
    # Age the manifests so that any rewrite shows in the mtime.
    for p in paths:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    summary = prepare_iemocap(str(corpus), str(save))
    assert [p.stat().st_mtime_ns for p in paths] == [1_000_000_000] * 3
    assert summary["splits"]["test"]["utterances"] == 10

    # Option change: prepared again with the new option.
    prepare_iemocap(str(corpus), str(save), n_classes=6)
    assert all(p.stat().st_mtime_ns != 1_000_000_000 for p in paths)
    test = _load_splits(save)["test"]
    assert {v["emo"] for v in test.values()} >= {"exc", "fru"}

    # Corpus change: a label edited in an EmoEvaluation file.
    evalfile = corpus / "Session5/dialog/EmoEvaluation/Ses05F_impro01.txt"
    evalfile.write_text(
        _eval_text(
            "Ses05F_impro01",
            [t if t[0] != "M001" else ("M001", 4.0, 5.0, "ang") for t in TURNS],
        )
    )
    prepare_iemocap(str(corpus), str(save), n_classes=6)
    test = _load_splits(save)["test"]
    assert test["Ses05F_impro01_M001"]["emo"] == "ang"

    # Fold change moves the test session.
    prepare_iemocap(str(corpus), str(save), split="loso", fold=2, n_classes=6)
    test = _load_splits(save)["test"]
    assert {v["speaker"] for v in test.values()} == {"Ses02F", "Ses02M"}


def test_stale_manifests_without_signature_are_replaced(corpus, tmp_path):
    save = tmp_path / "save"
    save.mkdir()
    for s in ("train", "valid", "test"):
        (save / f"{s}.json").write_text("{}")
    prepare_iemocap(str(corpus), str(save))
    assert len(_load_splits(save)["test"]) == 10


def test_deleted_wav_triggers_new_prep(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_iemocap(str(corpus), str(save))
    os.remove(_wav(corpus, 5, "Ses05F_impro01", "F000"))
    summary = prepare_iemocap(str(corpus), str(save))
    assert summary["skipped"]["missing_audio"] == 1
    assert "Ses05F_impro01_F000" not in _load_splits(save)["test"]


def _write_bad_audio(path, kind):
    if kind == "missing_audio":
        os.remove(path)
    elif kind == "unreadable_audio":
        path.write_bytes(b"RIFF\x00\x00not really a wav file at all")
    elif kind == "empty_audio":
        sf.write(str(path), np.zeros(0, dtype="float32"), SR)
    elif kind == "silent_audio":
        sf.write(str(path), np.zeros(SR // 4, dtype="float32"), SR)
    elif kind == "nan_audio":
        data = _noise()
        data[100] = np.nan
        sf.write(str(path), data, SR, subtype="FLOAT")
    elif kind == "wrong_sample_rate":
        sf.write(str(path), _noise(), 8000)
    elif kind == "not_mono":
        sf.write(str(path), np.stack([_noise(), _noise(seed=9)], 1), SR)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing_audio",
        "unreadable_audio",
        "empty_audio",
        "silent_audio",
        "nan_audio",
        "wrong_sample_rate",
        "not_mono",
    ],
)
def test_bad_audio_is_skipped_and_counted(corpus, tmp_path, caplog, kind):
    bad = _wav(corpus, 5, "Ses05F_impro01", "M001")
    _write_bad_audio(bad, kind)
    with caplog.at_level(logging.INFO):
        summary = prepare_iemocap(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"][kind] == 1
    assert "Ses05F_impro01_M001" not in _load_splits(tmp_path / "save")["test"]
    assert summary["splits"]["test"]["utterances"] == 9
    text = caplog.text
    assert str(bad) in text  # the skip names the file
    assert f"{kind}=1" in text  # and the end summary counts it


def test_malformed_line_and_unknown_label(corpus, tmp_path, caplog):
    evalfile = corpus / "Session5/dialog/EmoEvaluation/Ses05F_impro01.txt"
    lines = evalfile.read_text().splitlines()
    # Line numbers are 1-based: find the F000 and M001 turn lines.
    i_f000 = next(i for i, x in enumerate(lines) if "_F000\t" in x)
    i_m001 = next(i for i, x in enumerate(lines) if "_M001\t" in x)
    lines[i_f000] = "[1.0000 - oops]\tSes05F_impro01_F000\tneu\t[1, 1, 1]"
    lines[i_m001] = lines[i_m001].replace("\tsad\t", "\tzzz\t")
    evalfile.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        summary = prepare_iemocap(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"]["malformed_line"] == 1
    assert summary["skipped"]["unknown_label"] == 1
    test = _load_splits(tmp_path / "save")["test"]
    assert "Ses05F_impro01_F000" not in test
    assert "Ses05F_impro01_M001" not in test  # never given a wrong label
    assert f"{evalfile}:{i_f000 + 1}" in caplog.text
    assert f"{evalfile}:{i_m001 + 1}" in caplog.text
    assert "'zzz'" in caplog.text


def test_turn_of_other_dialogue_is_malformed(corpus, tmp_path):
    evalfile = corpus / "Session5/dialog/EmoEvaluation/Ses05F_impro01.txt"
    evalfile.write_text(
        evalfile.read_text().replace(
            "Ses05F_impro01_F000", "Ses05F_impro02_F000"
        )
    )
    summary = prepare_iemocap(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"]["malformed_line"] == 1


def test_empty_dialogue_is_dropped_and_counted(corpus, tmp_path):
    wavdir = corpus / "Session5/sentences/wav/Ses05M_script01_1"
    for wav in wavdir.iterdir():
        wav.unlink()
    summary = prepare_iemocap(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"]["empty_dialogue"] == 1
    assert summary["skipped"]["missing_audio"] == 5  # the 4-class turns
    test = _load_splits(tmp_path / "save")["test"]
    assert {v["dialogue_id"] for v in test.values()} == {"Ses05F_impro01"}
    assert summary["splits"]["test"]["dialogues"] == 1


def test_partial_corpus_is_accepted(tmp_path):
    corpus = make_iemocap(tmp_path, sessions=(1, 5))
    summary = prepare_iemocap(str(corpus), str(tmp_path / "save"))
    assert summary["splits"]["test"]["dialogues"] == 2
    assert summary["splits"]["train"]["dialogues"] == 2
    assert summary["splits"]["valid"]["utterances"] == 0


def test_bad_arguments_and_skip_prep(corpus, tmp_path):
    save = tmp_path / "save"
    with pytest.raises(ValueError, match="split"):
        prepare_iemocap(str(corpus), str(save), split="bogus")
    with pytest.raises(ValueError, match="fold"):
        prepare_iemocap(str(corpus), str(save), split="loso", fold=6)
    with pytest.raises(ValueError, match="n_classes"):
        prepare_iemocap(str(corpus), str(save), n_classes=5)
    with pytest.raises(FileNotFoundError, match="Session"):
        prepare_iemocap(str(tmp_path), str(save))
    assert prepare_iemocap(str(corpus), str(save), skip_prep=True) is None
    assert not save.exists()

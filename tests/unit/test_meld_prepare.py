"""Tests of recipes/MELD/meld_prepare.py on a tiny fake corpus.

Authors
 * speechbrain_dpm contributors 2026
"""

import csv
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


meld_prepare = _load(
    "meld_prepare", ROOT / "recipes" / "MELD" / "meld_prepare.py"
)
prepare_meld = meld_prepare.prepare_meld

HEADER = [
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
]
# split -> rows of (dialogue, utterance, speaker, emotion, text, start, end);
# train dialogue 0 is written out of Utterance_ID order on purpose.
ROWS = {
    "train": [
        (0, 2, "Ross", "surprise", "Really?", "00:01:02,500", "00:01:03,000"),
        (0, 0, "Monica", "neutral", "Hi.", "00:01:00,000", "00:01:00,800"),
        (0, 3, "Monica", "anger", "Stop it!", "00:01:03,100", "00:01:04,000"),
        (0, 1, "Ross", "joy", "It’s me, café!", "0:01:01,000", "0:01:02.0"),
        (1, 0, "Joey", "sadness", "No...", "01:10:00,250", "01:10:01,000"),
        (1, 1, "Chandler", "fear", "Uh oh.", "01:10:01,500", "01:10:02,000"),
    ],
    "dev": [
        (0, 0, "Rachel", "neutral", "Okay.", "00:00:01,000", "00:00:02,000"),
        (0, 1, "Phoebe", "disgust", "Ew.", "00:00:02,500", "00:00:03,000"),
    ],
    "test": [
        (0, 0, "Ross", "joy", "Yes!", "00:02:00,000", "00:02:01,000"),
        (0, 1, "Rachel", "anger", "No!", "00:02:01,500", "00:02:02,000"),
        (0, 2, "Ross", "neutral", "Fine.", "00:02:02,500", "00:02:03,000"),
        (1, 0, "Joey", "neutral", "Hey.", "00:03:00,000", "00:03:00,500"),
    ],
}  # fmt: skip
CSV_NAMES = {
    "train": "train_sent_emo.csv",
    "dev": "dev_sent_emo.csv",
    "test": "test_sent_emo.csv",
}
MEDIA = {
    "train": "train/train_splits",
    "dev": "dev/dev_splits_complete",
    "test": "test/output_repeated_splits_test",
}
SR = 16000


def _noise(seconds=0.25, seed=0, sr=SR):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(sr * seconds))).astype("float32")


def write_csv(path, rows, encoding="utf-8", header=HEADER):
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i, (dia, utt, spk, emo, text, start, end) in enumerate(rows):
            row = {
                "Sr No.": i + 1,
                "Utterance": text,
                "Speaker": spk,
                "Emotion": emo,
                "Sentiment": "neutral",
                "Dialogue_ID": dia,
                "Utterance_ID": utt,
                "Season": 1,
                "Episode": 1,
                "StartTime": start,
                "EndTime": end,
            }
            writer.writerow([row[h] for h in header])


def make_meld(root, encoding="utf-8", media=MEDIA, rows=ROWS):
    """Builds a tiny MELD.Raw tree with 16 kHz mono .wav media."""
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        write_csv(root / CSV_NAMES[split], split_rows, encoding)
        folder = root / media[split]
        folder.mkdir(parents=True, exist_ok=True)
        for i, (dia, utt, *_rest) in enumerate(split_rows):
            sf.write(str(folder / f"dia{dia}_utt{utt}.wav"), _noise(seed=i), SR)
    return root


def _load_splits(save):
    return {
        s: json.loads((pathlib.Path(save) / f"{s}.json").read_text())
        for s in ("train", "valid", "test")
    }


@pytest.fixture
def corpus(tmp_path):
    return make_meld(tmp_path / "MELD")


def test_manifest_fields_and_order(corpus, tmp_path):
    save = tmp_path / "save"
    summary = prepare_meld(str(corpus), str(save))
    splits = _load_splits(save)
    train = splits["train"]
    assert set(train) == {
        "train_dia0_utt0",
        "train_dia0_utt1",
        "train_dia0_utt2",
        "train_dia0_utt3",
        "train_dia1_utt0",
        "train_dia1_utt1",
    }
    first = train["train_dia0_utt1"]
    assert set(first) == {
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
    assert first["dialogue_id"] == "train_dia0"
    assert first["emo"] == "hap"  # joy
    assert first["speaker"] == "Ross"
    assert first["text"] == "It’s me, café!"
    assert first["start"] == pytest.approx(61.0)
    assert first["end"] == pytest.approx(62.0)
    assert first["length"] == pytest.approx(0.25, abs=1e-3)
    # A 16 kHz mono .wav fallback is used in place.
    assert first["wav"] == str(corpus / MEDIA["train"] / "dia0_utt1.wav")
    assert os.path.isabs(first["wav"])
    # Turn order follows Utterance_ID, not the CSV row order.
    assert [train[f"train_dia0_utt{u}"]["turn_index"] for u in range(4)] == [
        0,
        1,
        2,
        3,
    ]
    assert train["train_dia1_utt0"]["start"] == pytest.approx(4200.25)
    # Official split: dev -> valid.
    assert set(splits["valid"]) == {"dev_dia0_utt0", "dev_dia0_utt1"}
    assert splits["valid"]["dev_dia0_utt1"]["emo"] == "dis"
    assert splits["test"]["test_dia1_utt0"]["dialogue_id"] == "test_dia1"
    assert summary["skipped"] == {}
    assert summary["splits"]["train"]["classes"] == {
        "ang": 1,
        "fea": 1,
        "hap": 1,
        "neu": 1,
        "sad": 1,
        "sur": 1,
    }


def test_four_class_mapping(corpus, tmp_path):
    save = tmp_path / "save"
    summary = prepare_meld(str(corpus), str(save), n_classes=4)
    splits = _load_splits(save)
    train = splits["train"]
    assert {k: v["emo"] for k, v in train.items()} == {
        "train_dia0_utt0": "neu",
        "train_dia0_utt1": "hap",
        "train_dia0_utt3": "ang",
        "train_dia1_utt0": "sad",
    }
    # Turn indices are contiguous over the kept utterances.
    assert train["train_dia0_utt3"]["turn_index"] == 2
    assert summary["skipped"] == {
        "dropped_label:dis": 1,
        "dropped_label:fea": 1,
        "dropped_label:sur": 1,
    }
    for entries in splits.values():
        assert {v["emo"] for v in entries.values()} <= {
            "neu",
            "hap",
            "sad",
            "ang",
        }


def test_missing_column_names_file_and_column(corpus, tmp_path):
    header = [h for h in HEADER if h != "Emotion"]
    path = corpus / "dev_sent_emo.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerow(header)
    with pytest.raises(ValueError) as err:
        prepare_meld(str(corpus), str(tmp_path / "save"))
    assert str(path) in str(err.value)
    assert "'Emotion'" in str(err.value)


def test_layout_variants(tmp_path):
    flat = {"train": "train_splits", "dev": "dev_splits_complete"}
    flat["test"] = "output_repeated_splits_test"
    corpus = make_meld(tmp_path / "data" / "MELD.Raw", media=flat)
    summary = prepare_meld(str(tmp_path / "data"), str(tmp_path / "save"))
    assert summary["splits"]["test"]["utterances"] == 4
    assert summary["splits"]["train"]["utterances"] == 6
    test = _load_splits(tmp_path / "save")["test"]
    assert test["test_dia0_utt0"]["wav"].startswith(str(corpus))
    with pytest.raises(FileNotFoundError, match="MELD"):
        prepare_meld(str(tmp_path), str(tmp_path / "save2"))


def test_cp1252_and_mojibake_text(tmp_path):
    corpus = make_meld(tmp_path / "a", encoding="cp1252")
    prepare_meld(str(corpus), str(tmp_path / "save"))
    train = _load_splits(tmp_path / "save")["train"]
    assert train["train_dia0_utt1"]["text"] == "It’s me, café!"
    # UTF-8 text that was saved again as if it were cp1252 (mojibake).
    path = corpus / "train_sent_emo.csv"
    text = path.read_bytes().decode("cp1252")
    path.write_bytes(text.encode("utf-8").decode("cp1252").encode("utf-8"))
    prepare_meld(str(corpus), str(tmp_path / "save"))
    train = _load_splits(tmp_path / "save")["train"]
    assert train["train_dia0_utt1"]["text"] == "It’s me, café!"


def test_bad_rows_are_skipped_with_location(tmp_path, caplog):
    rows = dict(ROWS)
    rows["test"] = ROWS["test"] + [
        (1, 1, "Joey", "sarcasm", "Sure.", "00:03:01,000", "00:03:02,000"),
        ("x", 2, "Joey", "joy", "Bad id.", "00:03:02,000", "00:03:03,000"),
        (1, 3, "Joey", "joy", "Bad time.", "00:03:xx,000", "00:03:04,000"),
        (0, 1, "Rachel", "joy", "Repeated.", "00:02:01,500", "00:02:02,000"),
    ]  # fmt: skip
    corpus = make_meld(tmp_path / "MELD", rows=rows)
    csv_path = corpus / "test_sent_emo.csv"
    with caplog.at_level(logging.INFO):
        summary = prepare_meld(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"] == {
        "unknown_label": 1,
        "malformed_line": 2,
        "duplicate_turn": 1,
    }
    test = _load_splits(tmp_path / "save")["test"]
    assert "test_dia1_utt1" not in test  # never a wrong label
    assert test["test_dia0_utt1"]["emo"] == "ang"  # first row kept
    for line in (6, 7, 8, 9):  # header is line 1
        assert f"{csv_path}:{line}" in caplog.text
    assert "'sarcasm'" in caplog.text
    assert "unknown_label=1" in caplog.text  # end summary


def test_missing_and_silent_media_and_empty_dialogue(corpus, tmp_path, caplog):
    os.remove(corpus / MEDIA["test"] / "dia1_utt0.wav")
    sf.write(
        str(corpus / MEDIA["test"] / "dia0_utt2.wav"),
        np.zeros(4000, dtype="float32"),
        SR,
    )
    with caplog.at_level(logging.INFO):
        summary = prepare_meld(str(corpus), str(tmp_path / "save"))
    assert summary["skipped"] == {
        "missing_audio": 1,
        "silent_audio": 1,
        "empty_dialogue": 1,
    }
    test = _load_splits(tmp_path / "save")["test"]
    assert set(test) == {"test_dia0_utt0", "test_dia0_utt1"}
    assert summary["splits"]["test"]["dialogues"] == 1
    assert "empty_dialogue=1" in caplog.text


def test_idempotent_and_reprepares_on_change(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_meld(str(corpus), str(save))
    paths = [save / f"{s}.json" for s in ("train", "valid", "test")]
    for p in paths:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    summary = prepare_meld(str(corpus), str(save))
    assert [p.stat().st_mtime_ns for p in paths] == [1_000_000_000] * 3
    assert summary["splits"]["train"]["utterances"] == 6

    prepare_meld(str(corpus), str(save), n_classes=4)
    assert all(p.stat().st_mtime_ns != 1_000_000_000 for p in paths)
    assert len(_load_splits(save)["train"]) == 4

    # Corpus change: a media file removed.
    os.remove(corpus / MEDIA["train"] / "dia0_utt0.wav")
    summary = prepare_meld(str(corpus), str(save), n_classes=4)
    assert summary["skipped"]["missing_audio"] == 1
    assert "train_dia0_utt0" not in _load_splits(save)["train"]


def test_bad_arguments_and_skip_prep(corpus, tmp_path):
    with pytest.raises(ValueError, match="n_classes"):
        prepare_meld(str(corpus), str(tmp_path / "s"), n_classes=6)
    assert (
        prepare_meld(str(corpus), str(tmp_path / "s"), skip_prep=True) is None
    )
    assert not (tmp_path / "s").exists()


def test_ffmpeg_absent_is_a_clear_error(corpus, tmp_path, monkeypatch):
    # A 44.1 kHz stereo .wav needs conversion.
    sf.write(
        str(corpus / MEDIA["dev"] / "dia0_utt0.wav"),
        np.stack([_noise(sr=44100), _noise(sr=44100, seed=3)], 1),
        44100,
    )
    monkeypatch.setattr(meld_prepare.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        prepare_meld(str(corpus), str(tmp_path / "save"))


needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg not installed"
)


def _make_mp4(path, seconds=0.5):
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=440:duration={seconds}:sample_rate=44100",
            "-ac", "2", "-c:a", "aac", str(path),
        ],
        check=True,
    )  # fmt: skip


@needs_ffmpeg
def test_mp4_conversion(corpus, tmp_path, caplog):
    media = corpus / MEDIA["test"]
    os.remove(media / "dia0_utt0.wav")
    _make_mp4(media / "dia0_utt0.mp4")
    # A 44.1 kHz stereo .wav fallback is converted too.
    os.remove(media / "dia0_utt1.wav")
    sf.write(
        str(media / "dia0_utt1.wav"),
        np.stack([_noise(sr=44100), _noise(sr=44100, seed=3)], 1),
        44100,
    )
    # A broken mp4 is a counted skip, not a crash.
    os.remove(media / "dia0_utt2.wav")
    (media / "dia0_utt2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    save = tmp_path / "save"
    with caplog.at_level(logging.INFO):
        summary = prepare_meld(str(corpus), str(save), num_workers=2)
    assert summary["skipped"] == {"unreadable_audio": 1}
    assert str(media / "dia0_utt2.mp4") in caplog.text
    test = _load_splits(save)["test"]
    wav = save / "wav" / "test_dia0_utt0.wav"
    assert test["test_dia0_utt0"]["wav"] == str(wav)
    data, sr = sf.read(str(wav))
    assert sr == 16000 and data.ndim == 1
    assert len(data) == pytest.approx(8000, abs=1200)  # aac padding
    assert np.abs(data).max() > 0.05  # the sine, not silence
    assert test["test_dia0_utt0"]["length"] == pytest.approx(
        len(data) / 16000, abs=1e-3
    )
    converted = save / "wav" / "test_dia0_utt1.wav"
    assert test["test_dia0_utt1"]["wav"] == str(converted)
    assert sf.info(str(converted)).channels == 1
    assert not list((save / "wav").glob("*.part*"))

    # Re-preparing (option change) does not convert existing wavs again.
    os.utime(wav, ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    prepare_meld(str(corpus), str(save), n_classes=4)
    assert wav.stat().st_mtime_ns == 2_000_000_000_000_000_000
    assert _load_splits(save)["test"]["test_dia0_utt0"]["wav"] == str(wav)

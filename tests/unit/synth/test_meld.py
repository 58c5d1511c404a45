"""Tests of the MELD layout writer (``synth.meld``).

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import re
import shutil
import subprocess

import pytest
import soundfile as sf

from speechbrain_dpm import synth
from speechbrain_dpm.synth import meld

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"
)

MELD_TIME_RE = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3}$")


def _meld_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, r)) for r in reader]


@needs_ffmpeg
def test_meld_layout(tmp_path, rms_db):
    config = synth.MeldConfig(n_dialogues=(2, 1, 1), turns=(3, 4), seed=4)
    root = synth.generate_meld(tmp_path / "MELD.Raw", config)
    assert "SYNTHETIC" in (root / synth.SYNTH_FILE).read_text()
    folders = {
        "train": "train/train_splits",
        "dev": "dev/dev_splits_complete",
        "test": "test/output_repeated_splits_test",
    }
    for split, folder in folders.items():
        header, rows = _meld_csv_rows(root / f"{split}_sent_emo.csv")
        assert header == list(synth.MELD_COLUMNS)
        assert [int(r["Sr No."]) for r in rows] == list(range(1, len(rows) + 1))
        n_dia = {"train": 2, "dev": 1, "test": 1}[split]
        assert {int(r["Dialogue_ID"]) for r in rows} == set(range(n_dia))
        for r in rows:
            assert r["Emotion"] in synth.MELD_LABELS
            assert r["Sentiment"] in ("positive", "negative", "neutral")
            assert (r["Emotion"] == "neutral") == (r["Sentiment"] == "neutral")
            assert MELD_TIME_RE.match(r["StartTime"])
            assert MELD_TIME_RE.match(r["EndTime"])
            assert r["Speaker"] in synth.MELD_NAMES
            media = (
                root
                / folder
                / (f"dia{r['Dialogue_ID']}_utt{r['Utterance_ID']}.mp4")
            )
            assert media.is_file()
        # ffmpeg decodes the mp4 (AAC) back to audio of the right length.
        r = rows[0]
        media = root / folder / f"dia{r['Dialogue_ID']}_utt0.mp4"
        wav = tmp_path / f"{split}.wav"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(media), "-ac", "1"]
            + ["-ar", "16000", str(wav)],
            check=True,
        )
        x, sr = sf.read(wav)

        def secs(t):
            h, m, s = t.replace(",", ".").split(":")
            return 3600 * int(h) + 60 * int(m) + float(s)

        expected = secs(r["EndTime"]) - secs(r["StartTime"])
        assert sr == 16000 and abs(len(x) / sr - expected) < 0.1
        assert rms_db(x) > -40
    n_media = sum(1 for _ in root.rglob("*.mp4"))
    n_rows = sum(
        len(_meld_csv_rows(root / f"{s}_sent_emo.csv")[1]) for s in folders
    )
    assert n_media == n_rows


def test_meld_wav_fallback(tmp_path, monkeypatch):
    which = shutil.which
    monkeypatch.setattr(
        meld.shutil,
        "which",
        lambda name: None if name == "ffmpeg" else which(name),
    )
    config = synth.MeldConfig(n_dialogues=(1, 1, 1), turns=(2, 2))
    root = synth.generate_meld(tmp_path / "m", config, n_jobs=1)
    assert not list(root.rglob("*.mp4"))
    wav = root / "dev/dev_splits_complete/dia0_utt0.wav"
    assert sf.info(wav).samplerate == 16000
    assert "WAV FALLBACK" in (root / synth.SYNTH_FILE).read_text()

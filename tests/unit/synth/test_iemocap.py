"""Tests of the IEMOCAP layout writer (``synth.iemocap``).

Authors
 * speechbrain_dpm developers 2026
"""

import hashlib
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechbrain_dpm import synth

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)

TRANS_RE = re.compile(r"^(\S+) \[(\d{3}\.\d{4})-(\d{3}\.\d{4})\]: (.+)$")


def tree_hashes(root):
    """sha256 of every file under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def test_iemocap_layout(iemocap, small, read_iemocap):
    root = iemocap
    dialogues = read_iemocap(root)
    assert len(dialogues) == 6
    meta = json.loads((root / synth.META_FILE).read_text())
    assert "SYNTHETIC" in (root / synth.SYNTH_FILE).read_text()
    assert synth.read_synthetic_params(root)["seed"] == small["seed"]
    labels = set()
    for name, turns in dialogues.items():
        ses = root / f"Session{turns[0]['session']}"
        # Turn numbers count per speaking actor: F000, F001, ... / M000, ...
        for g in "FM":
            idx = [t["index"] for t in turns if t["gender"] == g]
            assert idx == list(range(len(idx)))
        starts = [t["start"] for t in turns]
        assert starts == sorted(starts)
        for a, b in zip(turns, turns[1:]):
            assert a["end"] <= b["start"]
        trans = (ses / "dialog/transcriptions" / f"{name}.txt").read_text()
        parsed = [TRANS_RE.match(line) for line in trans.splitlines()]
        assert all(parsed)
        assert [(m[1], float(m[2]), float(m[3])) for m in parsed] == [
            (t["turn"], t["start"], t["end"]) for t in turns
        ]
        dialog, sr = sf.read(ses / "dialog/wav" / f"{name}.wav", dtype="int16")
        assert sr == 16000 and dialog.ndim == 1
        for t in turns:
            labels.add(t["label"])
            wav = ses / "sentences/wav" / name / f"{t['turn']}.wav"
            info = sf.info(wav)
            assert (info.samplerate, info.channels) == (16000, 1)
            assert info.subtype == "PCM_16"
            assert info.frames == round((t["end"] - t["start"]) * 16000)
            x, _ = sf.read(wav, dtype="int16")
            a = round(t["start"] * 16000)
            # The whole-dialogue recording holds the turn at its times.
            np.testing.assert_array_equal(dialog[a : a + len(x)], x)
            assert meta["utterances"][t["turn"]]["label"] == t["label"]
            assert meta["utterances"][t["turn"]]["speaker"] == (
                f"Ses0{t['session']}{t['gender']}"
            )
    assert {"neu", "hap", "sad", "ang"} <= labels
    assert labels & {"fru", "xxx"}
    speakers = meta["speakers"]
    assert sorted(speakers) == [
        f"Ses0{k}{g}" for k in range(1, 6) for g in "FM"
    ]
    assert all(s["gender"] == sid[-1] for sid, s in speakers.items())


def test_long_dialogue(iemocap, small, read_iemocap):
    lengths = sorted(len(t) for t in read_iemocap(iemocap).values())
    assert lengths[-1] >= 200
    assert lengths[0] <= small["turns"][1]


def test_written_labels_follow_plan(iemocap, small, read_iemocap):
    _, plan = synth.plan_iemocap(synth.IemocapConfig(**small))
    written = read_iemocap(iemocap)
    for d in plan:
        assert [u.label for u in d.utterances] == [
            t["label"] for t in written[d.dialogue_id]
        ]


def test_prosody_follows_emotion_per_speaker(iemocap, rms_db):
    meta = json.loads((iemocap / synth.META_FILE).read_text())
    feats = defaultdict(lambda: defaultdict(list))
    measured, planned = [], []
    for uid, m in meta["utterances"].items():
        x, _ = sf.read(
            iemocap
            / m["group"]
            / "sentences/wav"
            / m["dialogue_id"]
            / f"{uid}.wav"
        )
        level = rms_db(x)
        measured.append(level)
        planned.append(m["prosody"]["level_db"])
        if m["label"] != "xxx":
            feats[m["speaker"]][m["label"]].append(
                (level, len(x) / 16000 / len(m["text"]))
            )
    assert np.corrcoef(measured, planned)[0, 1] > 0.95
    compared = 0
    for spk, by_label in feats.items():
        ang, sad = by_label.get("ang", []), by_label.get("sad", [])
        if len(ang) < 3 or len(sad) < 3:
            continue
        compared += 1
        ang, sad = np.mean(ang, axis=0), np.mean(sad, axis=0)
        assert ang[0] > sad[0] + 6, spk  # louder
        assert ang[1] < 0.85 * sad[1], spk  # faster (seconds per char)
    assert compared >= 1


def test_determinism(tmp_path):
    five = synth.IemocapConfig(n_dialogues=2, turns=(3, 4), seed=5)
    six = synth.IemocapConfig(n_dialogues=2, turns=(3, 4), seed=6)
    a = synth.generate_iemocap(tmp_path / "a", five, n_jobs=2)
    b = synth.generate_iemocap(tmp_path / "b", five, n_jobs=1)
    c = synth.generate_iemocap(tmp_path / "c", six, n_jobs=2)
    ha, hb, hc = tree_hashes(a), tree_hashes(b), tree_hashes(c)
    assert len(ha) > 10 and ha == hb
    assert ha != hc
    wavs = [k for k in ha if "sentences" in k and k in hc]
    assert all(ha[k] != hc[k] for k in wavs)

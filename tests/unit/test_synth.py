"""Tests of the synthetic IEMOCAP / MELD corpus generator.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import hashlib
import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechbrain_dpm import synth

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"
)

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]"
LABELS = "|".join(synth.IEMOCAP_LABELS)
TURN_RE = re.compile(
    r"^\[(\d+\.\d{4}) - (\d+\.\d{4})\]\t"
    r"((Ses0([1-5])([FM])_(?:impro\d{2}|script\d{2}_\d))_([FM])(\d{3}))\t"
    rf"({LABELS})\t"
    r"\[(\d\.\d{4}), (\d\.\d{4}), (\d\.\d{4})\]$"
)
CAT_RE = re.compile(r"^C-(E\d|[FM]1):\t([A-Za-z ]+;)+\t\(.*\)$")
DIM_RE = re.compile(
    r"^A-(E\d|[FM]1):\tval [1-5]; act [1-5]; dom  [1-5];\t\(.*\)$"
)
TRANS_RE = re.compile(r"^(\S+) \[(\d{3}\.\d{4})-(\d{3}\.\d{4})\]: (.+)$")
MELD_TIME_RE = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3}$")

SMALL = {"n_dialogues": 5, "turns": (4, 6), "seed": 11, "long_dialogues": 1}


def parse_emo_evaluation(path):
    """Parses an EmoEvaluation file strictly; returns turn dicts."""
    lines = Path(path).read_text().split("\n")
    assert lines[0] == HEADER
    turns, i = [], 1
    while i < len(lines):
        if lines[i] == "":
            i += 1
            continue
        assert lines[i - 1] == "", f"block without blank line: {lines[i]!r}"
        m = TURN_RE.match(lines[i])
        assert m, f"bad turn line {lines[i]!r}"
        i += 1
        n_cat = n_dim = 0
        while i < len(lines) and lines[i] != "":
            if lines[i].startswith("C-"):
                assert CAT_RE.match(lines[i]), lines[i]
                n_cat += 1
            else:
                assert DIM_RE.match(lines[i]), lines[i]
                n_dim += 1
            i += 1
        assert n_cat >= 3 and n_dim >= 3
        turns.append(
            {
                "start": float(m[1]),
                "end": float(m[2]),
                "turn": m[3],
                "dialog": m[4],
                "session": int(m[5]),
                "gender": m[7],
                "index": int(m[8]),
                "label": m[9],
                "vad": [float(m[k]) for k in (10, 11, 12)],
            }
        )
    return turns


def read_iemocap(root):
    """All turns of a corpus, keyed by dialogue."""
    out = {}
    for k in range(1, 6):
        for f in sorted((root / f"Session{k}/dialog/EmoEvaluation").glob("*")):
            turns = parse_emo_evaluation(f)
            assert all(t["session"] == k for t in turns)
            assert all(t["dialog"] == f.stem for t in turns)
            out[f.stem] = turns
    return out


def tree_hashes(root):
    """sha256 of every file under root, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def rms_db(x):
    """RMS level in dBFS."""
    return 20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12)


def f0_median(x, sr=16000):
    """Median F0 by frame autocorrelation (voiced, loud frames only)."""
    win, hop, f0s = int(0.04 * sr), int(0.01 * sr), []
    thr = 0.3 * np.sqrt(np.mean(x**2))
    for i in range(0, len(x) - win, hop):
        w = x[i : i + win] - x[i : i + win].mean()
        if np.sqrt(np.mean(w**2)) < thr:
            continue
        ac = np.correlate(w, w, "full")[win - 1 :]
        lo, hi = sr // 400, sr // 60
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.5 * ac[0]:
            f0s.append(sr / k)
    return float(np.median(f0s))


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    """A small corpus: 5 short dialogues and one long one."""
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    return synth.generate_iemocap(root, n_jobs=2, **SMALL)


def test_iemocap_layout(iemocap):
    root = iemocap
    dialogues = read_iemocap(root)
    assert len(dialogues) == 6
    meta = json.loads((root / synth.META_FILE).read_text())
    assert "SYNTHETIC" in (root / synth.SYNTH_FILE).read_text()
    assert synth.read_synthetic_params(root)["seed"] == SMALL["seed"]
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


def test_long_dialogue(iemocap):
    lengths = sorted(len(t) for t in read_iemocap(iemocap).values())
    assert lengths[-1] >= 200
    assert lengths[0] <= SMALL["turns"][1]


def test_long_session_holds_every_long_dialogue():
    kw = {"n_dialogues": 10, "turns": (4, 6), "seed": 5, "long_turns": 30}
    _, plan = synth.plan_iemocap(long_dialogues=3, long_session=5, **kw)
    long_ = [d for d in plan if len(d.utterances) == 30]
    assert len(long_) == 3
    assert {d.dialogue_id[:5] for d in long_} == {"Ses05"}
    assert len({d.dialogue_id for d in plan}) == len(plan)
    # The ordinary dialogues are those of the same plan without the option.
    _, spread = synth.plan_iemocap(long_dialogues=3, **kw)
    assert [d.utterances for d in plan if len(d.utterances) != 30] == [
        d.utterances for d in spread if len(d.utterances) != 30
    ]
    with pytest.raises(ValueError, match="long_session"):
        synth.plan_iemocap(long_dialogues=1, long_session=6, **kw)


def test_written_labels_follow_plan(iemocap):
    _, plan = synth.plan_iemocap(**SMALL)
    written = read_iemocap(iemocap)
    for d in plan:
        assert [u.label for u in d.utterances] == [
            t["label"] for t in written[d.dialogue_id]
        ]


def _mean_run_length(stickiness):
    _, plan = synth.plan_iemocap(
        n_dialogues=20, turns=(40, 40), stickiness=stickiness, seed=3
    )
    runs = []
    for d in plan:
        for spk in {u.speaker for u in d.utterances}:
            seq = [u.emotion for u in d.utterances if u.speaker == spk]
            n_runs = 1 + sum(a != b for a, b in zip(seq, seq[1:]))
            runs.append(len(seq) / n_runs)
    return float(np.mean(runs))


def test_emotions_persist():
    sticky, loose = _mean_run_length(0.9), _mean_run_length(0.0)
    assert loose < 2.0
    assert sticky > 2.5 * loose


def test_prosody_follows_emotion_per_speaker(iemocap):
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


def test_emotion_shift_is_relative_to_speaker():
    text = "I moved the papers on Tuesday."
    loud = synth.SpeakerVoice("A", "F", "en+f2", 60.0, 100.0, 190.0, -21.0)
    soft = synth.SpeakerVoice("B", "F", "en+f2", 40.0, 100.0, 150.0, -29.0)
    rng = np.random.default_rng(0)

    def render(spk, emo):
        x = synth.synthesize_utterance(
            text, spk.voice, spk.prosody(emo, rng, jitter=0.0), 40.0, 0
        )
        return rms_db(x), len(x), f0_median(x)

    for spk in (loud, soft):
        ang, neu, sad = (render(spk, e) for e in ("ang", "neu", "sad"))
        assert ang[0] > neu[0] > sad[0]
        assert ang[1] < neu[1] < sad[1]
        assert neu[2] > sad[2]
    # One utterance alone is ambiguous: the loud speaker's sad is about as
    # loud as the soft speaker's neutral.
    assert abs(render(loud, "sad")[0] - render(soft, "neu")[0]) < 4


def test_subdued_turns_keep_their_label_but_lose_their_prosody():
    plain = synth.plan_iemocap(n_dialogues=10, seed=3)[1]
    flat = synth.plan_iemocap(n_dialogues=10, seed=3, subdued_share=0.4)[1]
    pairs = [
        (a, b)
        for da, db in zip(plain, flat)
        for a, b in zip(da.utterances, db.utterances)
    ]
    share = np.mean([b.subdued for _, b in pairs])
    assert 0.25 < share < 0.55
    assert not any(a.subdued for a, _ in pairs)
    # Everything but the prosody of the subdued turns stays as it was.
    for a, b in pairs:
        assert (a.utt_id, a.label, a.text) == (b.utt_id, b.label, b.text)
        if not b.subdued:
            assert a.prosody == b.prosody
    # A subdued angry turn is much closer to neutral loudness.
    shifted = [
        (a.prosody["level_db"], b.prosody["level_db"])
        for a, b in pairs
        if b.subdued and a.emotion == "ang"
    ]
    assert shifted
    drop = np.mean([x - y for x, y in shifted])
    assert drop > 0.6 * synth.EMOTION_PROSODY["ang"].gain_db


def test_subdued_share_zero_keeps_old_corpora_valid():
    base = {"seed": 1, "n_dialogues": 4}
    assert synth._subdued_param(0.0) == {}
    assert synth._subdued_param(0.3) == {"subdued_share": 0.3}
    a = synth.plan_iemocap(**base)[1]
    b = synth.plan_iemocap(subdued_share=0.0, **base)[1]
    assert a == b


def test_speaker_baselines_differ(iemocap):
    meta = json.loads((iemocap / synth.META_FILE).read_text())
    speakers = [synth.SpeakerVoice(**s) for s in meta["speakers"].values()]
    assert len({s.voice for s in speakers}) == 10
    for key in ("pitch", "pitch_range", "rate", "level_db"):
        assert len({getattr(s, key) for s in speakers}) == 10, key
    # The baselines are audible: same text, neutral, no jitter.
    levels, durations, rates = [], [], []
    for s in speakers:
        p = s.prosody("neu", np.random.default_rng(0), jitter=0.0)
        x = synth.synthesize_utterance("We need two more chairs.", s.voice, p)
        levels.append(rms_db(x) - s.level_db)
        durations.append(len(x))
        rates.append(s.rate)
    assert np.max(np.abs(levels)) < 1.0
    assert np.corrcoef(rates, 1 / np.asarray(durations))[0, 1] > 0.7


def test_determinism(tmp_path):
    kw = {"n_dialogues": 2, "turns": (3, 4)}
    a = synth.generate_iemocap(tmp_path / "a", seed=5, n_jobs=2, **kw)
    b = synth.generate_iemocap(tmp_path / "b", seed=5, n_jobs=1, **kw)
    c = synth.generate_iemocap(tmp_path / "c", seed=6, n_jobs=2, **kw)
    ha, hb, hc = tree_hashes(a), tree_hashes(b), tree_hashes(c)
    assert len(ha) > 10 and ha == hb
    assert ha != hc
    wavs = [k for k in ha if "sentences" in k and k in hc]
    assert all(ha[k] != hc[k] for k in wavs)


def test_idempotent_and_safe(tmp_path):
    kw = {"n_dialogues": 1, "turns": (2, 2), "seed": 2, "n_jobs": 1}
    root = synth.generate_iemocap(tmp_path / "c", **kw)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    synth.generate_iemocap(root, **kw)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    with pytest.raises(FileExistsError):
        synth.generate_iemocap(root, **{**kw, "seed": 3})
    synth.generate_iemocap(root, overwrite=True, **{**kw, "seed": 3})
    assert synth.read_synthetic_params(root)["seed"] == 3
    # A folder that looks like a real corpus is never touched.
    real = tmp_path / "real"
    (real / "Session1").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        synth.generate_iemocap(real, **kw)
    # An interrupted run is redone.
    (root / synth.META_FILE).unlink()
    text = (root / synth.SYNTH_FILE).read_text()
    (root / synth.SYNTH_FILE).write_text(
        text.replace("status: complete", "status: in progress")
    )
    synth.generate_iemocap(root, **{**kw, "seed": 3})
    assert (root / synth.META_FILE).exists()


def test_cli(tmp_path):
    out = tmp_path / "cli"
    argv = ["iemocap", "--out", str(out), "--dialogues", "1", "--turns", "2,3"]
    assert synth.main(argv + ["--jobs", "1", "--seed", "9"]) == 0
    params = synth.read_synthetic_params(out)
    assert params["seed"] == 9 and params["turns"] == [2, 3]
    assert len(read_iemocap(out)) == 1


def _meld_csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, r)) for r in reader]


@needs_ffmpeg
def test_meld_layout(tmp_path):
    root = synth.generate_meld(
        tmp_path / "MELD.Raw", n_dialogues=(2, 1, 1), turns=(3, 4), seed=4
    )
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
        synth.shutil,
        "which",
        lambda name: None if name == "ffmpeg" else which(name),
    )
    root = synth.generate_meld(
        tmp_path / "m", n_dialogues=(1, 1, 1), turns=(2, 2), n_jobs=1
    )
    assert not list(root.rglob("*.mp4"))
    wav = root / "dev/dev_splits_complete/dia0_utt0.wav"
    assert sf.info(wav).samplerate == 16000
    assert "WAV FALLBACK" in (root / synth.SYNTH_FILE).read_text()


def test_plan_from_dialogue_csv(tmp_path):
    path = tmp_path / "d.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(synth.MELD_COLUMNS)
        w.writerow([1, "Hi, there.", "Ann", "joy", "positive", 0, 0])
        w.writerow([2, "Oh. Hello.", "Bob", "anger", "negative", 0, 1])
        w.writerow([3, "Bye now.", "Ann", "sadness", "negative", 0, 2])
        w.writerow([4, "Next one.", "Cy", "neutral", "neutral", 1, 0])
    speakers, plan = synth.plan_iemocap(
        n_dialogues=1, text_csv=path, csv_labels=True, seed=0
    )
    utts = plan[0].utterances
    assert [u.text for u in utts] == ["Hi, there.", "Oh. Hello.", "Bye now."]
    assert utts[0].speaker == utts[2].speaker != utts[1].speaker
    assert [u.emotion for u in utts] == ["hap", "ang", "sad"]
    _, long_plan = synth.plan_meld(
        n_dialogues=(1, 0, 0), long_dialogues=1, long_turns=7, text_csv=path
    )
    assert len(long_plan[1].utterances) == 7
    assert long_plan[1].group == "test"


def test_meld_subdued_turns_differ_between_splits_and_keep_labels():
    plain = synth.plan_meld((4, 2, 2), seed=5)[1]
    flat = synth.plan_meld((4, 2, 2), seed=5, subdued_share=0.4)[1]
    for a, b in zip(plain, flat):
        assert [u.label for u in a.utterances] == [
            u.label for u in b.utterances
        ]
    # Dialogue ids restart in every split; the subdued turns must not.
    by_split = {}
    for d in flat:
        if d.dialogue_id == "dia0":
            by_split[d.group] = [u.subdued for u in d.utterances]
    assert len(by_split) == 3
    shortest = min(len(v) for v in by_split.values())
    assert len({tuple(v[:shortest]) for v in by_split.values()}) > 1
    assert any(u.subdued for d in flat for u in d.utterances)

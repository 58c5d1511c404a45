"""Fixtures shared by the tests of the synthetic corpus generator.

Authors
 * speechbrain_dpm developers 2026
"""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechbrain_dpm import synth

#: Options of the small corpus: 5 short dialogues and one long one.
SMALL = {"n_dialogues": 5, "turns": (4, 6), "seed": 11, "long_dialogues": 1}

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


def _read_iemocap(root):
    """All turns of a corpus, keyed by dialogue."""
    out = {}
    for k in range(1, 6):
        for f in sorted((root / f"Session{k}/dialog/EmoEvaluation").glob("*")):
            turns = parse_emo_evaluation(f)
            assert all(t["session"] == k for t in turns)
            assert all(t["dialog"] == f.stem for t in turns)
            out[f.stem] = turns
    return out


def _rms_db(x):
    """RMS level in dBFS."""
    return 20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12)


@pytest.fixture(scope="session")
def small():
    """Options of the small corpus (a dict of ``IemocapConfig`` fields)."""
    return dict(SMALL)


@pytest.fixture(scope="session")
def iemocap(tmp_path_factory):
    """A small corpus: 5 short dialogues and one long one (made once)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    return synth.generate_iemocap(root, synth.IemocapConfig(**SMALL), n_jobs=2)


@pytest.fixture(scope="session")
def read_iemocap():
    """``read_iemocap(root)``: all turns of a corpus, keyed by dialogue,
    each EmoEvaluation file parsed strictly."""
    return _read_iemocap


@pytest.fixture(scope="session")
def rms_db():
    """``rms_db(x)``: RMS level of a waveform in dBFS."""
    return _rms_db

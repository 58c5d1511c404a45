"""Tests of the synthetic speakers and their emotion prosody
(``synth.voices``), as espeak-ng renders them.

Authors
 * speechbrain_dpm developers 2026
"""

import json
import shutil

import numpy as np
import pytest

from speechbrain_dpm import synth

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


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


def test_emotion_shift_is_relative_to_speaker(rms_db):
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


def test_speaker_baselines_differ(iemocap, rms_db):
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

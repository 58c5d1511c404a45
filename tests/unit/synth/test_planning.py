"""Tests of corpus planning (``synth.planning``): speakers, turns,
emotions, labels and subdued turns, without audio.

Authors
 * speechbrain_dpm developers 2026
"""

import csv

import numpy as np
import pytest

from speechbrain_dpm import synth
from speechbrain_dpm.synth import IemocapConfig, MeldConfig


def test_long_session_holds_every_long_dialogue():
    kw = {"n_dialogues": 10, "turns": (4, 6), "seed": 5, "long_turns": 30}
    _, plan = synth.plan_iemocap(
        IemocapConfig(long_dialogues=3, long_session=5, **kw)
    )
    long_ = [d for d in plan if len(d.utterances) == 30]
    assert len(long_) == 3
    assert {d.dialogue_id[:5] for d in long_} == {"Ses05"}
    assert len({d.dialogue_id for d in plan}) == len(plan)
    # The ordinary dialogues are those of the same plan without the option.
    _, spread = synth.plan_iemocap(IemocapConfig(long_dialogues=3, **kw))
    assert [d.utterances for d in plan if len(d.utterances) != 30] == [
        d.utterances for d in spread if len(d.utterances) != 30
    ]
    with pytest.raises(ValueError, match="long_session"):
        synth.plan_iemocap(
            IemocapConfig(long_dialogues=1, long_session=6, **kw)
        )


def _mean_run_length(stickiness):
    _, plan = synth.plan_iemocap(
        IemocapConfig(
            n_dialogues=20, turns=(40, 40), stickiness=stickiness, seed=3
        )
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


def test_subdued_turns_keep_their_label_but_lose_their_prosody():
    plain = synth.plan_iemocap(IemocapConfig(n_dialogues=10, seed=3))[1]
    flat = synth.plan_iemocap(
        IemocapConfig(n_dialogues=10, seed=3, subdued_share=0.4)
    )[1]
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
        IemocapConfig(n_dialogues=1, text_csv=path, csv_labels=True, seed=0)
    )
    utts = plan[0].utterances
    assert [u.text for u in utts] == ["Hi, there.", "Oh. Hello.", "Bye now."]
    assert utts[0].speaker == utts[2].speaker != utts[1].speaker
    assert [u.emotion for u in utts] == ["hap", "ang", "sad"]
    _, long_plan = synth.plan_meld(
        MeldConfig(
            n_dialogues=(1, 0, 0), long_dialogues=1, long_turns=7, text_csv=path
        )
    )
    assert len(long_plan[1].utterances) == 7
    assert long_plan[1].group == "test"


def test_meld_subdued_turns_differ_between_splits_and_keep_labels():
    plain = synth.plan_meld(MeldConfig(n_dialogues=(4, 2, 2), seed=5))[1]
    flat = synth.plan_meld(
        MeldConfig(n_dialogues=(4, 2, 2), seed=5, subdued_share=0.4)
    )[1]
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

"""Tests of the corpus options (``synth.config``).

Authors
 * speechbrain_dpm developers 2026
"""

from dataclasses import fields

import pytest

from speechbrain_dpm import synth
from speechbrain_dpm.synth.config import _subdued_param


def test_subdued_share_zero_keeps_old_corpora_valid():
    base = {"seed": 1, "n_dialogues": 4}
    assert _subdued_param(0.0) == {}
    assert _subdued_param(0.3) == {"subdued_share": 0.3}
    a = synth.plan_iemocap(synth.IemocapConfig(**base))[1]
    b = synth.plan_iemocap(synth.IemocapConfig(subdued_share=0.0, **base))[1]
    assert a == b


@pytest.mark.parametrize(
    "config_class", [synth.IemocapConfig, synth.MeldConfig]
)
def test_every_option_is_recorded(config_class):
    # An option missing from SYNTHETIC.txt would let a corpus made with
    # another value of it pass for the same corpus.
    record = config_class(subdued_share=0.1).record()
    assert {f.name for f in fields(config_class)} <= set(record)

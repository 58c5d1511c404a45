"""Tests of the command line (``synth.cli``).

Authors
 * speechbrain_dpm developers 2026
"""

import shutil

import pytest

from speechbrain_dpm import synth
from speechbrain_dpm.synth.cli import build_parser, config_from_args


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)
def test_cli(tmp_path, read_iemocap):
    out = tmp_path / "cli"
    argv = ["iemocap", "--out", str(out), "--dialogues", "1", "--turns", "2,3"]
    assert synth.main(argv + ["--jobs", "1", "--seed", "9"]) == 0
    params = synth.read_synthetic_params(out)
    assert params["seed"] == 9 and params["turns"] == [2, 3]
    assert len(read_iemocap(out)) == 1


def test_every_option_fills_the_config():
    def parse(*argv):
        return config_from_args(
            build_parser().parse_args([*argv, "--out", "x"])
        )

    assert parse("iemocap") == synth.IemocapConfig()
    assert parse("meld") == synth.MeldConfig()
    shared = ["--seed", "3", "--long", "2", "--long-turns", "50"]
    shared += ["--stickiness", "0.5", "--turns", "3,4", "--intensity", "1.5"]
    shared += ["--jitter", "0.5", "--laden-share", "0.1"]
    shared += ["--subdued-share", "0.2", "--text-csv", "t.csv", "--csv-labels"]
    expected = {
        "seed": 3,
        "long_dialogues": 2,
        "long_turns": 50,
        "stickiness": 0.5,
        "turns": (3, 4),
        "intensity": 1.5,
        "jitter": 0.5,
        "laden_share": 0.1,
        "subdued_share": 0.2,
        "text_csv": "t.csv",
        "csv_labels": True,
    }
    iemocap = parse(
        "iemocap", *shared, "--dialogues", "7", "--long-session", "5"
    )
    assert iemocap == synth.IemocapConfig(
        n_dialogues=7, long_session=5, **expected
    )
    meld = parse("meld", *shared, "--dialogues", "1,2,3", "--video")
    assert meld == synth.MeldConfig(
        n_dialogues=(1, 2, 3), video=True, **expected
    )

"""Tests of a corpus's record and the idempotency it gives
(``synth.provenance``).

Authors
 * speechbrain_dpm developers 2026
"""

import shutil

import pytest

from speechbrain_dpm import synth

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def test_idempotent_and_safe(tmp_path):
    two = synth.IemocapConfig(n_dialogues=1, turns=(2, 2), seed=2)
    three = synth.IemocapConfig(n_dialogues=1, turns=(2, 2), seed=3)
    root = synth.generate_iemocap(tmp_path / "c", two, n_jobs=1)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    synth.generate_iemocap(root, two, n_jobs=1)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    with pytest.raises(FileExistsError):
        synth.generate_iemocap(root, three, n_jobs=1)
    synth.generate_iemocap(root, three, n_jobs=1, overwrite=True)
    assert synth.read_synthetic_params(root)["seed"] == 3
    # A folder that looks like a real corpus is never touched.
    real = tmp_path / "real"
    (real / "Session1").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        synth.generate_iemocap(real, two, n_jobs=1)
    # An interrupted run is redone.
    (root / synth.META_FILE).unlink()
    text = (root / synth.SYNTH_FILE).read_text()
    (root / synth.SYNTH_FILE).write_text(
        text.replace("status: complete", "status: in progress")
    )
    synth.generate_iemocap(root, three, n_jobs=1)
    assert (root / synth.META_FILE).exists()
